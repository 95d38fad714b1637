# MPI tests: one binary, run by ctest at 1, 2 and 3 ranks (oversubscribed on small machines).
add_executable(mpi_training mpi_training.cpp $<TARGET_OBJECTS:sama_test_main>)
target_link_libraries(mpi_training PRIVATE sama::lib GTest::gtest)
set(SAMA_MPIEXEC_ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1)
foreach(np 1 2 3)
  add_test(NAME mpi_training_np${np}
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} ${MPIEXEC_PREFLAGS} --oversubscribe
                   $<TARGET_FILE:mpi_training> ${MPIEXEC_POSTFLAGS})
  set_tests_properties(mpi_training_np${np} PROPERTIES TIMEOUT 300 PROCESSORS ${np} ENVIRONMENT "${SAMA_MPIEXEC_ENV}" LABELS mpi)
endforeach()
# A rank that throws ends the whole job quickly, with a message naming the rank and the step.
add_test(NAME mpi_rank_failure COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi_rank_failure.sh ${MPIEXEC_EXECUTABLE}
                                      $<TARGET_FILE:sama> ${PROJECT_SOURCE_DIR})
set_tests_properties(mpi_rank_failure PROPERTIES TIMEOUT 120 ENVIRONMENT "${SAMA_MPIEXEC_ENV}" LABELS mpi)
# The scaling-study driver end to end on the smoke deck (1 and 2 ranks), with its report and plot.
add_test(NAME scaling_study_smoke COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/scaling_study_smoke.sh
                                          $<TARGET_FILE:sama> ${PROJECT_SOURCE_DIR})
set_tests_properties(scaling_study_smoke PROPERTIES TIMEOUT 300 ENVIRONMENT "${SAMA_MPIEXEC_ENV}" LABELS mpi)
# SIGUSR1 to mpirun and SIGKILL of a rank during checkpoint writes, each followed by a bitwise resume.
foreach(np 1 2)
  add_test(NAME mpi_preemption_np${np} COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/mpi_preemption.sh ${MPIEXEC_EXECUTABLE}
                                               $<TARGET_FILE:sama> ${PROJECT_SOURCE_DIR} ${np})
  set_tests_properties(mpi_preemption_np${np} PROPERTIES TIMEOUT 300 ENVIRONMENT "${SAMA_MPIEXEC_ENV}" LABELS mpi)
endforeach()
