#pragma once
/// Error checking for the CUDA backend: `device_error`, the checks of cudaError_t, cudnnStatus_t and
/// cublasStatus_t, kernel-launch checks, and RAII wrappers of the cuDNN descriptors.
///
/// Every failed call throws `mammocl::device_error` whose message is the call with its arguments, the
/// status name and the status string, and whose what() adds file:line, e.g.
///   cudnnConvolutionForward(x (8,64,56,56) stride 200704, w (32,64,3,3), pad 1, stride 1, algo 1,
///   workspace 1048576 B): CUDNN_STATUS_BAD_PARAM: <cuDNN's text> [cuda_backend.hpp:812]
/// The argument text is built only when the call fails, so the checks cost one comparison.
#include <cuda_runtime_api.h>
#include <cublas_v2.h>
#include <cudnn.h>

#include <string>
#include <utility>

#include "mammocl/core/error.hpp"

namespace mammocl {

/// A CUDA, cuDNN or cuBLAS call failed, or no usable device is present. The message names the call, its
/// arguments and the status.
class device_error : public error { using error::error; };

namespace cuda_detail {

[[noreturn]] inline void fail_cuda(cudaError_t s, const std::string& call, const char* file, int line) {
  (void)cudaGetLastError();  // clear a sticky non-fatal error so later checks report their own status
  throw device_error(call + ": " + cudaGetErrorName(s) + ": " + cudaGetErrorString(s), file, line);
}

[[noreturn]] inline void fail_cudnn(cudnnStatus_t s, const std::string& call, const char* file, int line) {
  // cuDNN 9 keeps a text for the last failure of the calling thread, more specific than the status string.
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof detail);
  std::string msg = call + ": " + cudnnGetErrorString(s);
  if (detail[0] != '\0') msg += std::string(": ") + detail;
  throw device_error(msg, file, line);
}

[[noreturn]] inline void fail_cublas(cublasStatus_t s, const std::string& call, const char* file, int line) {
  throw device_error(call + ": " + cublasGetStatusName(s) + ": " + cublasGetStatusString(s), file, line);
}

}  // namespace cuda_detail
}  // namespace mammocl

/// Checks a cudaError_t; on failure throws device_error with the streamed description of the call.
/// Usage: MAMMOCL_CUDA_CHECK(cudaMemcpy(d, s, b, k), "cudaMemcpy(", b, " B, device to host)");
#define MAMMOCL_CUDA_CHECK(expr, ...)                                                                    \
  do {                                                                                                   \
    const cudaError_t mammocl_status_ = (expr);                                                          \
    if (mammocl_status_ != cudaSuccess) [[unlikely]]                                                     \
      ::mammocl::cuda_detail::fail_cuda(mammocl_status_, ::mammocl::detail::concat(__VA_ARGS__), __FILE__, \
                                        __LINE__);                                                      \
  } while (0)

/// Checks a cudnnStatus_t; on failure throws device_error with the streamed description of the call.
#define MAMMOCL_CUDNN_CHECK(expr, ...)                                                                    \
  do {                                                                                                    \
    const cudnnStatus_t mammocl_status_ = (expr);                                                         \
    if (mammocl_status_ != CUDNN_STATUS_SUCCESS) [[unlikely]]                                             \
      ::mammocl::cuda_detail::fail_cudnn(mammocl_status_, ::mammocl::detail::concat(__VA_ARGS__), __FILE__, \
                                         __LINE__);                                                      \
  } while (0)

/// Checks a cublasStatus_t; on failure throws device_error with the streamed description of the call.
#define MAMMOCL_CUBLAS_CHECK(expr, ...)                                                                    \
  do {                                                                                                     \
    const cublasStatus_t mammocl_status_ = (expr);                                                         \
    if (mammocl_status_ != CUBLAS_STATUS_SUCCESS) [[unlikely]]                                             \
      ::mammocl::cuda_detail::fail_cublas(mammocl_status_, ::mammocl::detail::concat(__VA_ARGS__), __FILE__, \
                                          __LINE__);                                                      \
  } while (0)

/// After a kernel launch: throws device_error naming the kernel and its sizes when the launch failed
/// (bad configuration, no kernel image for this GPU, a sticky error of an earlier kernel).
#define MAMMOCL_KERNEL_CHECK(kernel_name, ...)                                                            \
  do {                                                                                                    \
    const cudaError_t mammocl_status_ = cudaGetLastError();                                               \
    if (mammocl_status_ != cudaSuccess) [[unlikely]]                                                      \
      ::mammocl::cuda_detail::fail_cuda(mammocl_status_,                                                  \
                                        ::mammocl::detail::concat("kernel ", kernel_name, "(", __VA_ARGS__, ")"), \
                                        __FILE__, __LINE__);                                             \
  } while (0)

namespace mammocl::cuda_detail {

/// An owning handle of one cuDNN descriptor kind: created in the constructor, destroyed in the destructor,
/// movable, not copyable.
template <class H, cudnnStatus_t (*Create)(H*), cudnnStatus_t (*Destroy)(H)>
class descriptor {
 public:
  explicit descriptor(const char* what) {
    MAMMOCL_CUDNN_CHECK(Create(&h_), "cudnnCreate", what, "Descriptor()");
  }
  descriptor(const descriptor&) = delete;
  descriptor& operator=(const descriptor&) = delete;
  descriptor(descriptor&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  descriptor& operator=(descriptor&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  ~descriptor() { reset(); }
  [[nodiscard]] H get() const noexcept { return h_; }
  operator H() const noexcept { return h_; }  // NOLINT: passes straight into cuDNN calls

 private:
  void reset() noexcept {
    if (h_) Destroy(h_);  // destruction cannot fail for a valid handle; nothing to report from a destructor
    h_ = nullptr;
  }
  H h_ = nullptr;
};

}  // namespace mammocl::cuda_detail

namespace mammocl {

/// A cuDNN tensor descriptor (cudnnSetTensor4dDescriptorEx and friends set it).
struct cudnn_tensor_desc
    : cuda_detail::descriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor> {
  cudnn_tensor_desc() : descriptor("Tensor") {}
};
/// A cuDNN filter descriptor.
struct cudnn_filter_desc
    : cuda_detail::descriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor> {
  cudnn_filter_desc() : descriptor("Filter") {}
};
/// A cuDNN convolution descriptor.
struct cudnn_convolution_desc
    : cuda_detail::descriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                              cudnnDestroyConvolutionDescriptor> {
  cudnn_convolution_desc() : descriptor("Convolution") {}
};
/// A cuDNN pooling descriptor.
struct cudnn_pooling_desc
    : cuda_detail::descriptor<cudnnPoolingDescriptor_t, cudnnCreatePoolingDescriptor, cudnnDestroyPoolingDescriptor> {
  cudnn_pooling_desc() : descriptor("Pooling") {}
};
/// A cuDNN activation descriptor.
struct cudnn_activation_desc
    : cuda_detail::descriptor<cudnnActivationDescriptor_t, cudnnCreateActivationDescriptor,
                              cudnnDestroyActivationDescriptor> {
  cudnn_activation_desc() : descriptor("Activation") {}
};

}  // namespace mammocl
