// The Metal backend: availability only; this version generates no Metal code.
#pragma once
#include "backend/backend.h"

namespace parpy {
const Backend& metal_backend();
}
