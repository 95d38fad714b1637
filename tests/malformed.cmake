# Malformed inputs through the real executable: a corpus of broken IDX files, HDF5 files and decks,
# generated at test time by tests/corpus/make_malformed.py (Debian's python3 with h5py and numpy),
# each of which `sama train` must reject with exit code 1 and a message naming the file (and key),
# without a crash, a hang or a summary.json. Prints "N malformed inputs: N rejected, 0 crashes, 0 hangs".
if(NOT SAMA_PYTHON)
  find_program(SAMA_PYTHON python3 PATHS /usr/bin NO_DEFAULT_PATH)
endif()
execute_process(COMMAND ${SAMA_PYTHON} -c "import h5py, numpy" RESULT_VARIABLE _sama_malformed_py
                OUTPUT_QUIET ERROR_QUIET)
if(NOT SAMA_PYTHON OR NOT _sama_malformed_py EQUAL 0)
  message(FATAL_ERROR "sama: the malformed-input test needs python3 with h5py and numpy. On Debian 12 "
                      "install: apt-get install python3-h5py python3-numpy")
endif()
add_test(NAME malformed_inputs
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/malformed_inputs.sh $<TARGET_FILE:sama> ${SAMA_PYTHON}
                 ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/malformed)
set_tests_properties(malformed_inputs PROPERTIES TIMEOUT 600 PROCESSORS 2
                     ENVIRONMENT "${SAMA_MPIEXEC_ENV}" LABELS mpi)
