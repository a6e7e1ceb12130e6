// NVRTC as Python sees it: where the library was found (python -m parpy) and a compile of device
// code to an image, for tests. The Python package passes sys.path first, where pip installs it.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include "backend/backend.h"
#include "bindings/bind.h"
#include "jit/nvrtc.h"

namespace nb = nanobind;

namespace parpy {

void bind_nvrtc(nb::module_& m) {
  m.def("_set_python_paths", [](const std::vector<std::string>& dirs) { cuda::set_python_paths(dirs); });
  m.def("nvrtc", [] {
    nb::gil_scoped_release release;
    return cuda::describe_nvrtc();
  });
  auto as_dict = [](const cuda::NvrtcInfo* info) {
    nb::dict d;
    d["found"] = info->found;
    d["path"] = info->path;
    d["source"] = info->source;
    d["version"] = nb::make_tuple(info->major, info->minor);
    d["archs"] = info->archs;
    d["fp16_include_dir"] = info->fp16_include_dir;
    d["fp16_source"] = info->fp16_source;
    d["why_missing"] = info->why_missing;
    d["compiles"] = cuda::nvrtc_compile_count();
    return d;
  };
  m.def("_nvrtc_info", [as_dict] {
    const cuda::NvrtcInfo* info;
    {
      nb::gil_scoped_release release;
      info = &cuda::nvrtc();
    }
    return as_dict(info);
  });
  m.def("_nvrtc_search", [as_dict](const std::vector<std::string>& dirs) {
    cuda::NvrtcInfo info;
    {
      nb::gil_scoped_release release;
      info = cuda::search_nvrtc(dirs);
    }
    return as_dict(&info);
  });
  // (image bytes, "cubin" or "ptx", the -arch value, whether NVRTC ran) for device code, with
  // the include directories (`includes`, then parpy's) and header hash of a build (build_flags).
  m.def(
      "_nvrtc_compile",
      [](const std::string& code, int major, int minor, bool fast_math, const std::vector<std::string>& includes) {
        CompileOptions opts;
        opts.includes = includes;
        cuda::NvrtcImage image;
        {
          nb::gil_scoped_release release;
          image = cuda::nvrtc_compile(code, major, minor, build_flags(opts), fast_math);
        }
        const std::string& bytes = image.bytes();
        return nb::make_tuple(nb::bytes(bytes.data(), bytes.size()), cuda::image_kind_name(image.target.kind),
                              image.target.arch_name(), image.built.built);
      },
      nb::arg("code"), nb::arg("major"), nb::arg("minor"), nb::arg("fast_math") = false,
      nb::arg("includes") = std::vector<std::string>{});
}

}  // namespace parpy
