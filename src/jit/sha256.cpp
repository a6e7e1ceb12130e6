#include "jit/sha256.h"

#include <array>
#include <cstdint>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define PARPY_SHA_EXTENSIONS 1
#endif

namespace parpy::jit {

namespace {

constexpr std::array<uint32_t, 64> round_constants = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

constexpr uint32_t rotate_right(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

void compress_block(std::array<uint32_t, 8>& state, const unsigned char* block) {
  std::array<uint32_t, 64> schedule{};
  for (int i = 0; i < 16; ++i) {
    schedule[i] = (uint32_t(block[4 * i]) << 24) | (uint32_t(block[4 * i + 1]) << 16) |
                  (uint32_t(block[4 * i + 2]) << 8) | uint32_t(block[4 * i + 3]);
  }
  for (int i = 16; i < 64; ++i) {
    uint32_t s0 = rotate_right(schedule[i - 15], 7) ^ rotate_right(schedule[i - 15], 18) ^
                  (schedule[i - 15] >> 3);
    uint32_t s1 = rotate_right(schedule[i - 2], 17) ^ rotate_right(schedule[i - 2], 19) ^
                  (schedule[i - 2] >> 10);
    schedule[i] = schedule[i - 16] + s0 + schedule[i - 7] + s1;
  }
  uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
  uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
  for (int i = 0; i < 64; ++i) {
    uint32_t sigma1 = rotate_right(e, 6) ^ rotate_right(e, 11) ^ rotate_right(e, 25);
    uint32_t choose = (e & f) ^ (~e & g);
    uint32_t temp1 = h + sigma1 + choose + round_constants[i] + schedule[i];
    uint32_t sigma0 = rotate_right(a, 2) ^ rotate_right(a, 13) ^ rotate_right(a, 22);
    uint32_t majority = (a & b) ^ (a & c) ^ (b & c);
    uint32_t temp2 = sigma0 + majority;
    h = g;
    g = f;
    f = e;
    e = d + temp1;
    d = c;
    c = b;
    b = a;
    a = temp1 + temp2;
  }
  state[0] += a;
  state[1] += b;
  state[2] += c;
  state[3] += d;
  state[4] += e;
  state[5] += f;
  state[6] += g;
  state[7] += h;
}

#ifdef PARPY_SHA_EXTENSIONS

// The x86 SHA extensions (about ten times the speed of the portable code: a library is hashed each
// time it is loaded from the cache). state[] as in compress_block; `blocks` blocks of 64 bytes.
__attribute__((target("sha,sse4.1,ssse3"))) void
compress_blocks_sha_extensions(std::array<uint32_t, 8>& state, const unsigned char* data,
                               size_t blocks) {
  const __m128i byte_swap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  // The instructions keep the state as ABEF and CDGH.
  __m128i dcba = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&state[0]));
  __m128i hgfe = _mm_loadu_si128(reinterpret_cast<const __m128i*>(&state[4]));
  __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
  __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
  __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
  __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
  for (; blocks > 0; --blocks, data += 64) {
    const __m128i abef_before = abef, cdgh_before = cdgh;
    __m128i words[4];
    for (int i = 0; i < 4; ++i) {
      words[i] = _mm_shuffle_epi8(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 16 * i)), byte_swap);
    }
    // Sixteen groups of four rounds; words[i % 4] holds the schedule words of group i, computed
    // (msg1 three groups ahead, msg2 one group ahead) in the ring of four registers.
    for (int i = 0; i < 16; ++i) {
      __m128i message = _mm_add_epi32(
          words[i % 4], _mm_loadu_si128(reinterpret_cast<const __m128i*>(&round_constants[4 * i])));
      cdgh = _mm_sha256rnds2_epu32(cdgh, abef, message);
      if (i >= 3 && i < 15) {
        __m128i& next = words[(i + 1) % 4];
        next = _mm_add_epi32(next, _mm_alignr_epi8(words[i % 4], words[(i + 3) % 4], 4));
        next = _mm_sha256msg2_epu32(next, words[i % 4]);
      }
      abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(message, 0x0E));
      if (i >= 1 && i < 13) {
        words[(i + 3) % 4] = _mm_sha256msg1_epu32(words[(i + 3) % 4], words[i % 4]);
      }
    }
    abef = _mm_add_epi32(abef, abef_before);
    cdgh = _mm_add_epi32(cdgh, cdgh_before);
  }
  __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
  __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&state[0]), _mm_blend_epi16(feba, dchg, 0xF0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(&state[4]), _mm_alignr_epi8(dchg, feba, 8));
}

bool has_sha_extensions() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0 || (b & (1u << 29)) == 0) {
    return false;
  }
  // SSSE3 and SSE4.1.
  return __get_cpuid(1, &a, &b, &c, &d) != 0 && (c & (1u << 9)) != 0 && (c & (1u << 19)) != 0;
}

#endif

void compress_blocks(std::array<uint32_t, 8>& state, const unsigned char* data, size_t blocks) {
#ifdef PARPY_SHA_EXTENSIONS
  static const bool fast = has_sha_extensions();
  if (fast) {
    compress_blocks_sha_extensions(state, data, blocks);
    return;
  }
#endif
  for (size_t i = 0; i < blocks; ++i) {
    compress_block(state, data + 64 * i);
  }
}

} // namespace

std::string sha256_hex(std::string_view data) {
  std::array<uint32_t, 8> state = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  const auto* bytes = reinterpret_cast<const unsigned char*>(data.data());
  size_t full_blocks = data.size() / 64;
  compress_blocks(state, bytes, full_blocks);

  // Padding: 0x80, zeros, then the message length in bits as a big-endian 64-bit integer.
  std::array<unsigned char, 128> tail{};
  size_t remaining = data.size() - 64 * full_blocks;
  for (size_t i = 0; i < remaining; ++i) {
    tail[i] = bytes[64 * full_blocks + i];
  }
  tail[remaining] = 0x80;
  size_t tail_size = remaining < 56 ? 64 : 128;
  uint64_t bit_length = uint64_t(data.size()) * 8;
  for (int i = 0; i < 8; ++i) {
    tail[tail_size - 1 - i] = static_cast<unsigned char>(bit_length >> (8 * i));
  }
  compress_blocks(state, tail.data(), tail_size / 64);

  static constexpr char hex_digits[] = "0123456789abcdef";
  std::string digest;
  digest.reserve(64);
  for (uint32_t word : state) {
    for (int shift = 28; shift >= 0; shift -= 4) {
      digest.push_back(hex_digits[(word >> shift) & 0xf]);
    }
  }
  return digest;
}

} // namespace parpy::jit
