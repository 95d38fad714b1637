# Data pruning: `sama prune` error cases, and the whole chain on the smoke deck (scores.h5 of a real
# run, every prune method, score_report.py, a pruning study in miniature, pruning_curves.py).
add_test(NAME prune_cli_errors COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/prune_cli_errors.sh $<TARGET_FILE:sama>
                                       ${PROJECT_SOURCE_DIR})
set_tests_properties(prune_cli_errors PROPERTIES TIMEOUT 120)
if(SAMA_PYTHON)
  add_test(NAME pruning_smoke COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/pruning_smoke.sh $<TARGET_FILE:sama>
                                      ${PROJECT_SOURCE_DIR} ${SAMA_PYTHON})
  set_tests_properties(pruning_smoke PROPERTIES TIMEOUT 300)
endif()
