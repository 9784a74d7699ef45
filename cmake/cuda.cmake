# The CUDA backend: finds the CUDA toolkit and cuDNN 9, builds the kernel library (kernels/) and defines
# mammocl::cuda. Included by the top-level CMakeLists.txt after project() when MAMMOCL_WITH_CUDA=ON.
#
# Cache variables:
#   CMAKE_CUDA_ARCHITECTURES  GPU architectures of the kernels (default 80;90: A100, H100/H200)
#   CUDNN_INCLUDE_DIR         folder holding cudnn.h and cudnn_version.h
#   CUDNN_LIBRARY_DIR         folder holding libcudnn.so (cuDNN 9)
#
# Targets:
#   mammocl_cuda_kernels      STATIC library of the kernels, compiled by nvcc
#   mammocl::cuda             INTERFACE: mammocl::mammocl + the kernels + cudart + cuBLAS + cuDNN,
#                             MAMMOCL_WITH_CUDA=1. Programs that link it need no nvcc for their own code.
# The CUDA targets are build-tree targets: they are not part of the installed mammoclTargets export
# (docs/gpu_backend.md says why), so find_package(mammocl) consumers keep working on machines without CUDA.

if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR "${CMAKE_CUDA_ARCHITECTURES}" STREQUAL "")
  set(CMAKE_CUDA_ARCHITECTURES 80 90 CACHE STRING "CUDA architectures of the MammoCL kernels")
endif()
if(NOT CMAKE_CUDA_HOST_COMPILER)
  # nvcc compiles the host side of the kernels with the same compiler as the C++ code, so the two agree
  # on the standard library and the ABI.
  set(CMAKE_CUDA_HOST_COMPILER ${CMAKE_CXX_COMPILER} CACHE FILEPATH "Host compiler of nvcc")
endif()
if(MAMMOCL_CCACHE AND NOT CMAKE_CUDA_COMPILER_LAUNCHER)
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${MAMMOCL_CCACHE})
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)

# ---------------------------------------------------------------- cuDNN
set(_mammocl_cudnn_hints)
foreach(_d IN LISTS CUDAToolkit_INCLUDE_DIRS)
  list(APPEND _mammocl_cudnn_hints ${_d})
endforeach()
# pip wheels (nvidia-cudnn-cu12/13) install include/ and lib/ under site-packages/nvidia/cudnn.
set(_mammocl_pip_cudnn)
find_package(Python3 QUIET COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  execute_process(COMMAND ${Python3_EXECUTABLE} -c
    "import os, nvidia.cudnn as m; print(os.path.dirname(m.__file__) if m.__file__ else list(m.__path__)[0])"
    OUTPUT_VARIABLE _mammocl_pip_cudnn OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
endif()

find_path(CUDNN_INCLUDE_DIR NAMES cudnn_version.h
  HINTS ${_mammocl_cudnn_hints} ${CUDAToolkit_TARGET_DIR}/include ${_mammocl_pip_cudnn}/include
  PATHS /usr/include /usr/include/x86_64-linux-gnu /usr/local/cuda/include
  DOC "Folder holding cudnn.h and cudnn_version.h (cuDNN 9)")
find_library(_mammocl_cudnn_lib NAMES cudnn libcudnn.so.9
  HINTS ${CUDNN_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_TARGET_DIR}/lib64
        ${CUDAToolkit_TARGET_DIR}/lib ${_mammocl_pip_cudnn}/lib
  PATHS /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /usr/local/cuda/lib64
  NO_CACHE)
if(_mammocl_cudnn_lib AND NOT CUDNN_LIBRARY_DIR)
  get_filename_component(_mammocl_cudnn_libdir "${_mammocl_cudnn_lib}" DIRECTORY)
  set(CUDNN_LIBRARY_DIR "${_mammocl_cudnn_libdir}" CACHE PATH "Folder holding libcudnn.so (cuDNN 9)")
endif()
if(NOT CUDNN_INCLUDE_DIR OR NOT _mammocl_cudnn_lib)
  message(FATAL_ERROR "MAMMOCL_WITH_CUDA is ON but cuDNN 9 was not found (header cudnn_version.h: "
    "'${CUDNN_INCLUDE_DIR}', library libcudnn: '${_mammocl_cudnn_lib}'). Set -DCUDNN_INCLUDE_DIR=<folder with "
    "cudnn.h> and -DCUDNN_LIBRARY_DIR=<folder with libcudnn.so>, or configure with -DMAMMOCL_WITH_CUDA=OFF.")
endif()
file(STRINGS "${CUDNN_INCLUDE_DIR}/cudnn_version.h" _mammocl_cudnn_ver REGEX "^#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) ")
string(REGEX REPLACE ".*CUDNN_MAJOR ([0-9]+).*" "\\1" MAMMOCL_CUDNN_MAJOR "${_mammocl_cudnn_ver}")
string(REGEX REPLACE ".*CUDNN_MINOR ([0-9]+).*" "\\1" MAMMOCL_CUDNN_MINOR "${_mammocl_cudnn_ver}")
string(REGEX REPLACE ".*CUDNN_PATCHLEVEL ([0-9]+).*" "\\1" MAMMOCL_CUDNN_PATCH "${_mammocl_cudnn_ver}")
if(NOT MAMMOCL_CUDNN_MAJOR MATCHES "^[0-9]+$" OR MAMMOCL_CUDNN_MAJOR LESS 9)
  message(FATAL_ERROR "MAMMOCL_WITH_CUDA needs cuDNN 9 or newer; ${CUDNN_INCLUDE_DIR}/cudnn_version.h says "
    "'${MAMMOCL_CUDNN_MAJOR}'. Point -DCUDNN_INCLUDE_DIR and -DCUDNN_LIBRARY_DIR at a cuDNN 9 installation.")
endif()
message(STATUS "MammoCL CUDA backend: CUDA ${CUDAToolkit_VERSION}, cuDNN "
  "${MAMMOCL_CUDNN_MAJOR}.${MAMMOCL_CUDNN_MINOR}.${MAMMOCL_CUDNN_PATCH} (${_mammocl_cudnn_lib}), "
  "architectures ${CMAKE_CUDA_ARCHITECTURES}")
if(NOT TARGET mammocl_cudnn)
  add_library(mammocl_cudnn UNKNOWN IMPORTED)
  set_target_properties(mammocl_cudnn PROPERTIES IMPORTED_LOCATION "${_mammocl_cudnn_lib}"
    INTERFACE_INCLUDE_DIRECTORIES "${CUDNN_INCLUDE_DIR}")
endif()

# ---------------------------------------------------------------- targets
add_subdirectory(${PROJECT_SOURCE_DIR}/kernels ${PROJECT_BINARY_DIR}/kernels)

add_library(mammocl_cuda INTERFACE)
add_library(mammocl::cuda ALIAS mammocl_cuda)
target_link_libraries(mammocl_cuda INTERFACE mammocl mammocl_cuda_kernels CUDA::cudart CUDA::cublas mammocl_cudnn)
target_compile_definitions(mammocl_cuda INTERFACE MAMMOCL_WITH_CUDA=1)
