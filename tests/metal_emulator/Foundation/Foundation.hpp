// A working stand-in for the parts of metal-cpp's Foundation that parpy_metal.h uses, for the
// Metal CPU emulator (see ../metal_emu_kernel.h). Objects are reference counted as in metal-cpp:
// made with a count of 1 (new..., alloc), or autoreleased (into the innermost autorelease pool of
// the thread, released when the pool is); a release to 0 deletes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace NS {
using UInteger = unsigned long;
enum StringEncoding : UInteger { UTF8StringEncoding = 4 };

class Object {
 public:
  virtual ~Object() = default;
  Object* retain() {
    ++refs_;
    return this;
  }
  void release() {
    if (--refs_ == 0) delete this;
  }
  inline Object* autorelease();

 private:
  long refs_ = 1;
};

class AutoreleasePool : public Object {
 public:
  static AutoreleasePool* alloc() { return new AutoreleasePool(); }
  AutoreleasePool* init() {
    stack().push_back(this);
    return this;
  }
  ~AutoreleasePool() override {
    for (Object* o : objects_) o->release();
    auto& s = stack();
    for (size_t i = s.size(); i-- > 0;)
      if (s[i] == this) {
        s.erase(s.begin() + long(i));
        break;
      }
  }
  static void add(Object* o) {
    // Without a pool the object leaks, as in metal-cpp.
    if (!stack().empty()) stack().back()->objects_.push_back(o);
  }

 private:
  static std::vector<AutoreleasePool*>& stack() {
    static thread_local std::vector<AutoreleasePool*> s;
    return s;
  }
  std::vector<Object*> objects_;
};

inline Object* Object::autorelease() {
  AutoreleasePool::add(this);
  return this;
}

class String : public Object {
 public:
  static String* string(const char* pString, StringEncoding) {
    auto* s = new String();
    s->text_ = pString;
    s->autorelease();
    return s;
  }
  const char* utf8String() const { return text_.c_str(); }

 private:
  std::string text_;
};

class Error : public Object {
 public:
  explicit Error(const std::string& what) : what_(what) {}
  String* localizedDescription() const { return String::string(what_.c_str(), UTF8StringEncoding); }

 private:
  std::string what_;
};
}  // namespace NS
