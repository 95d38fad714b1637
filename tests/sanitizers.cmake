# Under SAMA_SANITIZE every test runs with sanitizer options: no leak checking (Open MPI's own
# allocations would be reported at exit by every binary that initialises MPI), stack traces for
# UBSan, distinctive exit codes (86 ASan, 87 UBSan), and every report written to a file under
# sanitizer-reports/ as well. A report from a process whose failure a test expects (a script that
# checks for a non-zero exit, say) would otherwise pass unseen: the last test, sanitizer_reports,
# fails if any report was written during the run. Included last, so that it sees every test.
if(NOT SAMA_SANITIZE STREQUAL "")
  set(_sama_reports ${CMAKE_CURRENT_BINARY_DIR}/sanitizer-reports)
  get_property(_sama_all_tests DIRECTORY PROPERTY TESTS)
  foreach(t IN LISTS _sama_all_tests)
    set_property(TEST ${t} APPEND PROPERTY ENVIRONMENT
                 "ASAN_OPTIONS=detect_leaks=0:exitcode=86:detect_stack_use_after_return=1:log_path=${_sama_reports}/asan"
                 "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=87:log_path=${_sama_reports}/ubsan")
    set_property(TEST ${t} APPEND PROPERTY FIXTURES_REQUIRED sama_sanitizer_reports)
  endforeach()
  add_test(NAME sanitizer_reports_reset
           COMMAND bash -c "rm -rf \"$1\" && mkdir -p \"$1\"" _ ${_sama_reports})
  add_test(NAME sanitizer_reports
           COMMAND bash -c "r=$(grep -l -E 'ERROR: [A-Za-z]+Sanitizer|runtime error' \"$1\"/* 2>/dev/null);
                            if [ -n \"$r\" ]; then for f in $r; do echo \"== $f\"; cat \"$f\"; done; exit 1; fi;
                            echo 'no sanitizer reports'" _ ${_sama_reports})
  set_tests_properties(sanitizer_reports_reset PROPERTIES FIXTURES_SETUP sama_sanitizer_reports)
  set_tests_properties(sanitizer_reports PROPERTIES FIXTURES_CLEANUP sama_sanitizer_reports)
  list(LENGTH _sama_all_tests _sama_n)
  message(STATUS "sama: ${_sama_n} tests run with ASAN_OPTIONS=detect_leaks=0 (sanitizers: ${SAMA_SANITIZE}); "
                 "reports in ${_sama_reports}")
endif()
