// A declaration-only stand-in for the parts of metal-cpp's Foundation that parpy_metal.h uses, so
// that generated Metal host code can be compiled (-fsyntax-only) without a Mac. The signatures
// are metal-cpp's.
#pragma once
#include <cstdint>

namespace NS {
using UInteger = unsigned long;
enum StringEncoding : UInteger { UTF8StringEncoding = 4 };

class Object {
 public:
  void retain();
  void release();
};

class String : public Object {
 public:
  static String* string(const char* pString, StringEncoding encoding);
  const char* utf8String() const;
};

class Error : public Object {
 public:
  String* localizedDescription() const;
};

class AutoreleasePool : public Object {
 public:
  static AutoreleasePool* alloc();
  AutoreleasePool* init();
};
}  // namespace NS
