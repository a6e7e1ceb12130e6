// <math.h> for NVRTC: see cmath beside it.
#pragma once
#include "cmath"
