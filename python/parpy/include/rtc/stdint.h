// <stdint.h> for NVRTC: see cstdint beside it.
#pragma once
#include "cstdint"
