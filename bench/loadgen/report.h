// Printing a run's figures: one human line and, on request, one JSON line.
#pragma once

#include <cstdio>

#include "load_generator.h"
#include "options.h"

namespace chatws::bench {

void print_report(FILE* out, const Options& opts, const Result& r);

}  // namespace chatws::bench
