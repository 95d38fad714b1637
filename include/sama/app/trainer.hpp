#pragma once
// The training driver's public entry (sama::app::train, RunOptions, RunResult): see sama/train/train.hpp.
#include "sama/train/train.hpp"
