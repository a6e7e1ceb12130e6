// <stddef.h> for NVRTC: see cstddef beside it.
#pragma once
#include "cstddef"
