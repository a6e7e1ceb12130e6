// <float.h> for NVRTC: see cfloat beside it.
#pragma once
#include "cfloat"
