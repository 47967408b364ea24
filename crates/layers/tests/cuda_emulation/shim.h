// CPU emulation of the little of CUDA that crates/layers/src/cuda/kernels.cu uses, so g++ can
// compile that file unchanged (`g++ -x c++ -include shim.h kernels.cu`) into a shared library
// that tests/cuda_kernels_emulated.rs loads and runs on the CPU.
//
// A launch is emulated by the test: for every (block, thread) of the grid, in the order it
// chooses, it calls emu_set_thread and then the kernel's own exported symbol, so each call
// runs one CUDA thread's body. The indices are thread-local, so tests running in parallel
// threads do not disturb each other. The kernels use no shared memory, barriers or atomics,
// which is what makes running the threads one after the other a faithful emulation.
#pragma once

#include <math.h>
#include <string.h>

struct dim3 {
    unsigned int x, y, z;
};

static thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

// Kernels are plain functions here.
#define __global__

// CUDA's bit cast from int to float.
static inline float __int_as_float(int bits) {
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

// Sets the launch shape (grid_dim blocks of block_dim threads) and which thread runs next.
extern "C" void emu_set_thread(unsigned int grid_dim, unsigned int block_dim,
                               unsigned int block, unsigned int thread) {
    gridDim = dim3{grid_dim, 1, 1};
    blockDim = dim3{block_dim, 1, 1};
    blockIdx = dim3{block, 0, 0};
    threadIdx = dim3{thread, 0, 0};
}
