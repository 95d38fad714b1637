# Command-line tests: exit codes and messages of the real executable.
add_test(NAME cli_errors COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_errors.sh $<TARGET_FILE:sama>
                                 ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_errors PROPERTIES TIMEOUT 300)
add_test(NAME cli_info_bench COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_info_bench.sh $<TARGET_FILE:sama>)
set_tests_properties(cli_info_bench PROPERTIES TIMEOUT 300)
find_program(SAMA_PYTHON3 python3)
if(SAMA_PYTHON3)
  add_test(NAME postprocess_smoke COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/postprocess_smoke.sh $<TARGET_FILE:sama>
                                          ${PROJECT_SOURCE_DIR} ${SAMA_PYTHON3})
  set_tests_properties(postprocess_smoke PROPERTIES TIMEOUT 300)
endif()
