# Command-line tests: exit codes and messages of the real executable.
add_test(NAME cli_errors COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_errors.sh $<TARGET_FILE:sama>
                                 ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_errors PROPERTIES TIMEOUT 300)
add_test(NAME cli_info_bench COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_info_bench.sh $<TARGET_FILE:sama>)
set_tests_properties(cli_info_bench PROPERTIES TIMEOUT 300)
# The analysis scripts use Debian's python3-h5py, python3-numpy and python3-matplotlib: prefer the
# system interpreter that sees them over any other python3 on PATH.
find_program(SAMA_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT SAMA_PYTHON)
  find_program(SAMA_PYTHON python3)
endif()
if(SAMA_PYTHON)
  execute_process(COMMAND ${SAMA_PYTHON} -c "import h5py, numpy, matplotlib" RESULT_VARIABLE _sama_py_rc
                  OUTPUT_QUIET ERROR_QUIET)
  if(NOT _sama_py_rc EQUAL 0)
    message(FATAL_ERROR "sama: ${SAMA_PYTHON} cannot import h5py, numpy and matplotlib. On Debian 12 install: "
                        "apt-get install python3-h5py python3-numpy python3-matplotlib")
  endif()
  # Input integrity (issue 13): a file shrunk between open and read is refused; the checksum of the
  # bytes read is recorded; a pixel of 3e38 is refused at load.
  add_test(NAME data_integrity COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/data_integrity.sh $<TARGET_FILE:sama>
                                       ${PROJECT_SOURCE_DIR} ${SAMA_PYTHON})
  set_tests_properties(data_integrity PROPERTIES TIMEOUT 60)
  add_test(NAME postprocess_smoke COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/postprocess_smoke.sh $<TARGET_FILE:sama>
                                          ${PROJECT_SOURCE_DIR} ${SAMA_PYTHON})
  set_tests_properties(postprocess_smoke PROPERTIES TIMEOUT 300)
endif()
# Every shell script parses (bash -n) and passes shellcheck.
find_program(SAMA_SHELLCHECK shellcheck)
if(NOT SAMA_SHELLCHECK)
  message(FATAL_ERROR "sama: shellcheck not found. On Debian 12 install it with: apt-get install shellcheck")
endif()
add_test(NAME scripts_shellcheck COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/check_scripts.sh ${SAMA_SHELLCHECK}
                                         ${PROJECT_SOURCE_DIR})
# A file that crashes libhdf5 itself (tests/fuzz/known) is read in a child process first: a clean error
# naming the file, not a crash. (Not under sanitizers: they intercept the child's crash themselves.)
if(SAMA_SANITIZE STREQUAL "")
  add_test(NAME hdf5_library_crash_contained COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/hdf5_crash_contained.sh
                                                     $<TARGET_FILE:sama> ${PROJECT_SOURCE_DIR})
  set_tests_properties(hdf5_library_crash_contained PROPERTIES TIMEOUT 60)
endif()
# The hypergradient benchmark's records and plot, and the quality study in miniature.
add_test(NAME hypergradient_smoke COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/hypergradient_smoke.sh $<TARGET_FILE:sama>
                                          ${PROJECT_SOURCE_DIR})
set_tests_properties(hypergradient_smoke PROPERTIES TIMEOUT 300)
# The Meta-Weight-Net collapse detector: fires on the paper's sigmoid net, silent on softmax/monotone.
add_test(NAME weight_collapse COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/weight_collapse.sh $<TARGET_FILE:sama>
                                       ${PROJECT_SOURCE_DIR})
set_tests_properties(weight_collapse PROPERTIES TIMEOUT 300)
# Fault campaign (issue 13). Open MPI as root needs these; oversubscription for 2 cores.
set(SAMA_FAULT_ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1)
find_program(SAMA_FAULT_MPIEXEC NAMES mpiexec mpirun)
# FIFOs and devices as deck, data, checkpoint and `latest`: refused or skipped, never a hang.
add_test(NAME special_files COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/special_files.sh $<TARGET_FILE:sama>
                                    ${PROJECT_SOURCE_DIR})
set_tests_properties(special_files PROPERTIES TIMEOUT 90)
# Interrupted/completed runs refused without --resume/--overwrite; a directory in use refused naming its
# holder; `latest` older than the newest good checkpoint; renamed checkpoints; leftovers; header notes.
add_test(NAME run_dir_safety COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/run_dir_safety.sh $<TARGET_FILE:sama>
                                     ${PROJECT_SOURCE_DIR})
set_tests_properties(run_dir_safety PROPERTIES TIMEOUT 120)
# Extending a finished run: 20 + 20 steps equal 40 to the bit; the finished run's files kept.
add_test(NAME extend_run COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/extend_run.sh $<TARGET_FILE:sama> ${PROJECT_SOURCE_DIR})
set_tests_properties(extend_run PROPERTIES TIMEOUT 60)
# The memory estimate on the header; a model that cannot fit refused before allocating.
add_test(NAME memory_estimate COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/memory_estimate.sh $<TARGET_FILE:sama>
                                      ${PROJECT_SOURCE_DIR})
set_tests_properties(memory_estimate PROPERTIES TIMEOUT 60)
if(SAMA_FAULT_MPIEXEC)
  # Run directories of 240 and 300 characters at 1 and 2 ranks: preempted, resumed, completed (scores.h5).
  add_test(NAME long_path COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/long_path.sh ${SAMA_FAULT_MPIEXEC} $<TARGET_FILE:sama>
                                  ${PROJECT_SOURCE_DIR})
  set_tests_properties(long_path PROPERTIES TIMEOUT 120 ENVIRONMENT "${SAMA_FAULT_ENV}")
  # SIGTERM/SIGINT to mpirun, SIGTERM to one rank, SIGINT to one process, kill -9 of mpirun.
  add_test(NAME mpi_signals COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi_signals.sh ${SAMA_FAULT_MPIEXEC}
                                    $<TARGET_FILE:sama> ${PROJECT_SOURCE_DIR})
  set_tests_properties(mpi_signals PROPERTIES TIMEOUT 120 ENVIRONMENT "${SAMA_FAULT_ENV}")
endif()
if(SAMA_FAULT_MPIEXEC)
  # Disk full on a small tmpfs at 1 and 2 ranks (root only; skipped otherwise).
  add_test(NAME disk_full COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/disk_full.sh ${SAMA_FAULT_MPIEXEC} $<TARGET_FILE:sama>
                                  ${PROJECT_SOURCE_DIR})
  set_tests_properties(disk_full PROPERTIES TIMEOUT 90 SKIP_RETURN_CODE 77 ENVIRONMENT "${SAMA_FAULT_ENV}")
endif()
# Threads per rank: OMP_NUM_THREADS / SLURM_CPUS_PER_TASK, their reports, and repeatable 2-thread runs.
add_test(NAME threads_cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/threads_cli.sh $<TARGET_FILE:sama> ${PROJECT_SOURCE_DIR})
set_tests_properties(threads_cli PROPERTIES TIMEOUT 300 PROCESSORS 2)
