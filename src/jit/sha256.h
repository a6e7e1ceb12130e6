#pragma once

#include <string>
#include <string_view>

namespace parpy::jit {

// Lower-case hex SHA-256 digest (FIPS 180-4) of `data`. Used for content-addressed cache keys.
std::string sha256_hex(std::string_view data);

} // namespace parpy::jit
