// <limits.h> for NVRTC: see climits beside it.
#pragma once
#include "climits"
