#!/usr/bin/env bash
# bash -n and shellcheck over every shell script of the project.
set -eu
shellcheck=$1
src=$2
cd "$src"
scripts=(jobscripts/*.sh jobscripts/*.sbatch tests/*.sh .ci/run .ci/install-deps)
for s in "${scripts[@]}"; do bash -n "$s"; done
"$shellcheck" "${scripts[@]}"
echo "${#scripts[@]} scripts pass bash -n and shellcheck"
