// siamese-layers' own CUDA kernels: everything the GPU layers do besides matrix products
// (cuBLAS does those). The contract (names, argument order, thread counts) is in
// /work/notes/cuda-design.md ("Kernel contract" and "Contract changes").
//
// How it is built: the `cuda` feature embeds this file (include_str!) and compiles it at run
// time with NVRTC for the device's architecture, so building siamese needs no nvcc. Compile it
// with `--fmad=false`: the kernels then round exactly as the CPU layers do (no fused
// multiply-add), which the CPU-vs-GPU checks rely on.
//
// How it is tested without a GPU: crates/layers/tests/cuda_kernels_emulated.rs compiles this
// same file as C++ with g++ (`-include tests/cuda_emulation/shim.h`, which defines
// `__global__` away and emulates threadIdx/blockIdx/blockDim/gridDim), runs every kernel over
// blocks x threads in both orders on the CPU and compares it with the CPU backend and layers.
// So the file must stay plain C that both compilers accept: no CUDA headers (NVRTC has the
// built-ins: expf, logf, sqrtf, fmaxf), no shared memory, no __syncthreads, no atomics, no
// warp intrinsics. Every kernel is a grid-stride loop where each output element is written
// by exactly one thread, so results do not depend on the launch shape and are deterministic.
//
// Reference semantics: crates/layers/src/backend/cpu.rs and crates/layers/src/layers/*.rs
// (Caffe's); each kernel below sums in the same order as its CPU counterpart where it can.

// f32::MIN_POSITIVE, Caffe's FLT_MIN (no <cfloat> under NVRTC).
#define SIAMESE_FLT_MIN 1.17549435e-38f
// A quiet NaN (__int_as_float is a CUDA built-in; the emulation shim defines it).
#define SIAMESE_NAN __int_as_float(0x7fc00000)
// u32::MAX: the max-pooling mask of a window without any value above -FLT_MAX.
#define SIAMESE_NO_ARGMAX 0xFFFFFFFFu

#define GRID_STRIDE_LOOP(i, n)                                                     \
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < (n);                   \
         i += blockDim.x * gridDim.x)

// True in exactly one thread of the launch: the serial reductions run there.
#define FIRST_THREAD (blockIdx.x == 0 && threadIdx.x == 0)

// ---------------------------------------------------------------------------------------
// Convolution: im2col / col2im over the whole batch, column layout [num][K][P] with
// K = channels*kernel_h*kernel_w (row (c, ki, kj), Caffe's order) and P = out_h*out_w.

// Threads: num*K*P. col[n][c*kh*kw + ki*kw + kj][oh*out_w + ow] = im[n][c][h][w] with
// h = oh*stride_h - pad_h + ki*dilation_h (same for w); 0 outside the image.
extern "C" __global__ void im2col_batch(const float* im, int num, int channels, int height,
                                        int width, int kernel_h, int kernel_w, int pad_h,
                                        int pad_w, int stride_h, int stride_w, int dilation_h,
                                        int dilation_w, int out_h, int out_w, float* col) {
    int spatial = out_h * out_w;
    int rows = channels * kernel_h * kernel_w;
    int n_threads = num * rows * spatial;
    GRID_STRIDE_LOOP(i, n_threads) {
        int p = i % spatial;
        int r = (i / spatial) % rows;
        int n = i / (spatial * rows);
        int kj = r % kernel_w;
        int ki = (r / kernel_w) % kernel_h;
        int c = r / (kernel_w * kernel_h);
        int h = (p / out_w) * stride_h - pad_h + ki * dilation_h;
        int w = (p % out_w) * stride_w - pad_w + kj * dilation_w;
        float v = 0.0f;
        if (h >= 0 && h < height && w >= 0 && w < width) {
            v = im[((n * channels + c) * height + h) * width + w];
        }
        col[i] = v;
    }
}

// Threads: num*channels*height*width. Overwrites im with the sum of the column entries each
// pixel was copied to, gathered in (ki, kj) order: the order CpuBackend::col2im adds them.
extern "C" __global__ void col2im_batch(const float* col, int num, int channels, int height,
                                        int width, int kernel_h, int kernel_w, int pad_h,
                                        int pad_w, int stride_h, int stride_w, int dilation_h,
                                        int dilation_w, int out_h, int out_w, float* im) {
    int spatial = out_h * out_w;
    int rows = channels * kernel_h * kernel_w;
    int n_threads = num * channels * height * width;
    GRID_STRIDE_LOOP(i, n_threads) {
        int w = i % width;
        int h = (i / width) % height;
        int c = (i / (width * height)) % channels;
        int n = i / (width * height * channels);
        const float* image_col = col + (long long)n * rows * spatial;
        float sum = 0.0f;
        for (int ki = 0; ki < kernel_h; ++ki) {
            int h_off = h + pad_h - ki * dilation_h;
            if (h_off < 0 || h_off % stride_h != 0) continue;
            int oh = h_off / stride_h;
            if (oh >= out_h) continue;
            for (int kj = 0; kj < kernel_w; ++kj) {
                int w_off = w + pad_w - kj * dilation_w;
                if (w_off < 0 || w_off % stride_w != 0) continue;
                int ow = w_off / stride_w;
                if (ow >= out_w) continue;
                int r = (c * kernel_h + ki) * kernel_w + kj;
                sum += image_col[r * spatial + oh * out_w + ow];
            }
        }
        im[i] = sum;
    }
}

// ---------------------------------------------------------------------------------------
// Bias and reductions.

// Threads: num*channels*spatial. top[n][c][s] += bias[c] (conv: spatial = out_h*out_w;
// inner product: spatial = 1).
extern "C" __global__ void add_channel_bias(float* top, const float* bias, int num,
                                            int channels, int spatial) {
    GRID_STRIDE_LOOP(i, num * channels * spatial) {
        top[i] += bias[(i / spatial) % channels];
    }
}

// Threads: outer. out[o] = sum_{s < inner} x[o*inner + s], s ascending (overwrites).
extern "C" __global__ void sum_inner(const float* x, int outer, int inner, float* out) {
    GRID_STRIDE_LOOP(o, outer) {
        const float* row = x + (long long)o * inner;
        float sum = 0.0f;
        for (int s = 0; s < inner; ++s) sum += row[s];
        out[o] = sum;
    }
}

// Threads: inner. out[i] += sum_{n < num} x[n*inner + i], added one n at a time in
// ascending order (InnerProduct's bias gradient on the CPU, bit for bit).
extern "C" __global__ void accumulate_over_batch(const float* x, int num, int inner,
                                                 float* out) {
    GRID_STRIDE_LOOP(i, inner) {
        float acc = out[i];
        for (int n = 0; n < num; ++n) acc += x[(long long)n * inner + i];
        out[i] = acc;
    }
}

// ---------------------------------------------------------------------------------------
// Pooling over `planes` planes of height x width (planes = num*channels). Window of output
// o along an axis: [o*stride - pad, min(o*stride - pad + kernel, size + pad)), whose length
// is AVE's divisor, clipped to [0, size) for the values (CpuBackend's pool_window).

// Threads: planes*pooled_h*pooled_w. argmax = h*width + w of the FIRST maximum in row-major
// window order (strictly greater wins; starts from -FLT_MAX and SIAMESE_NO_ARGMAX).
extern "C" __global__ void max_pool_forward(const float* in, int planes, int height, int width,
                                            int pooled_h, int pooled_w, int kernel_h,
                                            int kernel_w, int stride_h, int stride_w,
                                            int pad_h, int pad_w, float* out,
                                            unsigned int* argmax) {
    GRID_STRIDE_LOOP(i, planes * pooled_h * pooled_w) {
        int pw = i % pooled_w;
        int ph = (i / pooled_w) % pooled_h;
        int p = i / (pooled_w * pooled_h);
        int hs = ph * stride_h - pad_h;
        int ws = pw * stride_w - pad_w;
        int he = hs + kernel_h < height ? hs + kernel_h : height;
        int we = ws + kernel_w < width ? ws + kernel_w : width;
        if (hs < 0) hs = 0;
        if (ws < 0) ws = 0;
        const float* plane = in + (long long)p * height * width;
        float best = -3.40282347e+38f;
        unsigned int best_idx = SIAMESE_NO_ARGMAX;
        for (int h = hs; h < he; ++h) {
            for (int w = ws; w < we; ++w) {
                float v = plane[h * width + w];
                if (v > best) {
                    best = v;
                    best_idx = (unsigned int)(h * width + w);
                }
            }
        }
        out[i] = best;
        argmax[i] = best_idx;
    }
}

// First and one-past-last pooled index along an axis whose window covers pixel x:
// o*stride - pad <= x < o*stride - pad + kernel (windows never start beyond size + pad).
#define POOLED_RANGE(x, pad, kernel, stride, pooled, first, last)                  \
    int first = ((x) + (pad) < (kernel)) ? 0 : ((x) + (pad) - (kernel)) / (stride) + 1; \
    int last = ((x) + (pad)) / (stride) + 1;                                        \
    if (last > (pooled)) last = (pooled);

// Threads: planes*height*width. Overwrites in_diff: each pixel gathers the gradients of the
// outputs whose argmax it is, in row-major output order (CpuBackend's scatter order).
extern "C" __global__ void max_pool_backward(const float* out_diff, const unsigned int* argmax,
                                             int planes, int height, int width, int pooled_h,
                                             int pooled_w, int kernel_h, int kernel_w,
                                             int stride_h, int stride_w, int pad_h, int pad_w,
                                             float* in_diff) {
    GRID_STRIDE_LOOP(i, planes * height * width) {
        int w = i % width;
        int h = (i / width) % height;
        int p = i / (width * height);
        POOLED_RANGE(h, pad_h, kernel_h, stride_h, pooled_h, ph0, ph1)
        POOLED_RANGE(w, pad_w, kernel_w, stride_w, pooled_w, pw0, pw1)
        long long base = (long long)p * pooled_h * pooled_w;
        unsigned int self = (unsigned int)(h * width + w);
        float sum = 0.0f;
        for (int ph = ph0; ph < ph1; ++ph) {
            for (int pw = pw0; pw < pw1; ++pw) {
                long long o = base + ph * pooled_w + pw;
                if (argmax[o] == self) sum += out_diff[o];
            }
        }
        in_diff[i] = sum;
    }
}

// Threads: planes*pooled_h*pooled_w. Caffe's AVE: the divisor counts the window clipped to
// [-pad, size + pad) (padding included); the sum covers the image part, row sums added in
// row order (as CpuBackend), divided (not multiplied by a reciprocal).
extern "C" __global__ void ave_pool_forward(const float* in, int planes, int height, int width,
                                            int pooled_h, int pooled_w, int kernel_h,
                                            int kernel_w, int stride_h, int stride_w,
                                            int pad_h, int pad_w, float* out) {
    GRID_STRIDE_LOOP(i, planes * pooled_h * pooled_w) {
        int pw = i % pooled_w;
        int ph = (i / pooled_w) % pooled_h;
        int p = i / (pooled_w * pooled_h);
        int hs = ph * stride_h - pad_h;
        int ws = pw * stride_w - pad_w;
        int he = hs + kernel_h < height + pad_h ? hs + kernel_h : height + pad_h;
        int we = ws + kernel_w < width + pad_w ? ws + kernel_w : width + pad_w;
        int pool_size = (he - hs) * (we - ws);
        if (hs < 0) hs = 0;
        if (ws < 0) ws = 0;
        if (he > height) he = height;
        if (we > width) we = width;
        const float* plane = in + (long long)p * height * width;
        float sum = 0.0f;
        for (int h = hs; h < he; ++h) {
            float row = 0.0f;
            for (int w = ws; w < we; ++w) row += plane[h * width + w];
            sum += row;
        }
        out[i] = sum / (float)pool_size;
    }
}

// Threads: planes*height*width. Overwrites in_diff: each pixel gathers out_diff/pool_size of
// every window covering it, in row-major output order.
extern "C" __global__ void ave_pool_backward(const float* out_diff, int planes, int height,
                                             int width, int pooled_h, int pooled_w,
                                             int kernel_h, int kernel_w, int stride_h,
                                             int stride_w, int pad_h, int pad_w,
                                             float* in_diff) {
    GRID_STRIDE_LOOP(i, planes * height * width) {
        int w = i % width;
        int h = (i / width) % height;
        int p = i / (width * height);
        POOLED_RANGE(h, pad_h, kernel_h, stride_h, pooled_h, ph0, ph1)
        POOLED_RANGE(w, pad_w, kernel_w, stride_w, pooled_w, pw0, pw1)
        const float* diff = out_diff + (long long)p * pooled_h * pooled_w;
        float sum = 0.0f;
        for (int ph = ph0; ph < ph1; ++ph) {
            int hs = ph * stride_h - pad_h;
            int he = hs + kernel_h < height + pad_h ? hs + kernel_h : height + pad_h;
            for (int pw = pw0; pw < pw1; ++pw) {
                int ws = pw * stride_w - pad_w;
                int we = ws + kernel_w < width + pad_w ? ws + kernel_w : width + pad_w;
                sum += diff[ph * pooled_w + pw] / (float)((he - hs) * (we - ws));
            }
        }
        in_diff[i] = sum;
    }
}

// ---------------------------------------------------------------------------------------
// Element-wise.

// Threads: n. y = max(x, 0) + slope*min(x, 0) (Caffe's form: +0 for negatives at slope 0).
extern "C" __global__ void relu_forward(const float* x, float* y, int n, float slope) {
    GRID_STRIDE_LOOP(i, n) {
        float v = x[i];
        y[i] = (v > 0.0f ? v : 0.0f) + slope * (v < 0.0f ? v : 0.0f);
    }
}

// Threads: n. dx = dy*((x > 0) + slope*(x <= 0)).
extern "C" __global__ void relu_backward(const float* x, const float* dy, float* dx, int n,
                                         float slope) {
    GRID_STRIDE_LOOP(i, n) {
        float v = x[i];
        dx[i] = dy[i] * ((v > 0.0f ? 1.0f : 0.0f) + slope * (v <= 0.0f ? 1.0f : 0.0f));
    }
}

// Threads: outer*(to_slice ? dst_axis : src_axis)*inner.
// to_slice = 1: dst[o][a][i] = src[o][offset + a][i], a < dst_axis (Slice forward, src = bottom).
// to_slice = 0: dst[o][offset + a][i] = src[o][a][i], a < src_axis (Slice backward into the
// bottom diff).
extern "C" __global__ void slice_copy(const float* src, float* dst, int outer, int src_axis,
                                      int dst_axis, int offset, int inner, int to_slice) {
    int piece = to_slice ? dst_axis : src_axis;
    GRID_STRIDE_LOOP(i, outer * piece * inner) {
        int s = i % inner;
        int a = (i / inner) % piece;
        int o = i / (inner * piece);
        if (to_slice) {
            dst[i] = src[((long long)o * src_axis + offset + a) * inner + s];
        } else {
            dst[((long long)o * dst_axis + offset + a) * inner + s] = src[i];
        }
    }
}

// Threads: n. y += x (Split backward, after copying the first top's diff).
extern "C" __global__ void add_into(const float* x, float* y, int n) {
    GRID_STRIDE_LOOP(i, n) { y[i] += x[i]; }
}

// Threads: n. x = value.
extern "C" __global__ void fill(float* x, int n, float value) {
    GRID_STRIDE_LOOP(i, n) { x[i] = value; }
}

// ---------------------------------------------------------------------------------------
// ContrastiveLoss over a, b of [num][dim] and sim of [num].

// Threads: num. dist_sq[p] = sum_c (a - b)^2 (c ascending); loss[p] = the pair's term:
// similar ((int)sim != 0): dist_sq; else legacy: max(margin - dist_sq, 0),
// else max(margin - sqrt(dist_sq), 0)^2. The layer's loss is sum_scaled(loss, num, 0.5/num).
extern "C" __global__ void contrastive_forward(const float* a, const float* b, const float* sim,
                                               int num, int dim, float margin, int legacy,
                                               float* dist_sq, float* loss) {
    GRID_STRIDE_LOOP(p, num) {
        const float* x = a + (long long)p * dim;
        const float* y = b + (long long)p * dim;
        float d2 = 0.0f;
        for (int c = 0; c < dim; ++c) {
            float d = x[c] - y[c];
            d2 += d * d;
        }
        dist_sq[p] = d2;
        float term;
        if ((int)sim[p] != 0) {
            term = d2;
        } else if (legacy) {
            term = fmaxf(margin - d2, 0.0f);
        } else {
            float gap = fmaxf(margin - sqrtf(d2), 0.0f);
            term = gap * gap;
        }
        loss[p] = term;
    }
}

// One thread (any launch; only the first thread writes). out[0] = scale * sum_i x[i],
// i ascending.
extern "C" __global__ void sum_scaled(const float* x, int n, float scale, float* out) {
    if (FIRST_THREAD) {
        float sum = 0.0f;
        for (int i = 0; i < n; ++i) sum += x[i];
        out[0] = scale * sum;
    }
}

// Threads: num*dim. Overwrites bottom_diff[p][c] = factor_p * (a - b)[p][c] where
// alpha = sign * top_diff[0] / num (sign +1 for bottom 0, -1 for bottom 1) and factor_p is
// alpha for similar pairs; for dissimilar ones 0 outside the margin, else -alpha (legacy) or
// -alpha*gap/(dist + 1e-4) with dist = sqrt(dist_sq), gap = margin - dist.
extern "C" __global__ void contrastive_backward(const float* a, const float* b,
                                                const float* sim, const float* dist_sq,
                                                int num, int dim, float margin, int legacy,
                                                const float* top_diff, float sign,
                                                float* bottom_diff) {
    float alpha = sign * (top_diff[0] / (float)(num > 1 ? num : 1));
    GRID_STRIDE_LOOP(i, num * dim) {
        int p = i / dim;
        float factor;
        if ((int)sim[p] != 0) {
            factor = alpha;
        } else {
            float gap, beta;
            if (legacy) {
                gap = margin - dist_sq[p];
                beta = -alpha;
            } else {
                float dist = sqrtf(dist_sq[p]);
                gap = margin - dist;
                beta = -alpha * gap / (dist + 1e-4f);
            }
            factor = gap > 0.0f ? beta : 0.0f;
        }
        bottom_diff[i] = factor * (a[i] - b[i]);
    }
}

// ---------------------------------------------------------------------------------------
// Softmax, SoftmaxWithLoss and Accuracy over x of [outer][channels][inner]; the label of
// position (o, s) is label[o*inner + s] (a float holding an integer).

// Threads: outer*inner. prob = exp(x - max) / sum over the channels (channels >= 1).
extern "C" __global__ void softmax_forward(const float* x, int outer, int channels, int inner,
                                           float* prob) {
    GRID_STRIDE_LOOP(i, outer * inner) {
        int s = i % inner;
        int o = i / inner;
        long long base = (long long)o * channels * inner + s;
        float m = x[base];
        for (int c = 1; c < channels; ++c) m = fmaxf(m, x[base + (long long)c * inner]);
        float sum = 0.0f;
        for (int c = 0; c < channels; ++c) {
            float e = expf(x[base + (long long)c * inner] - m);
            prob[base + (long long)c * inner] = e;
            sum += e;
        }
        for (int c = 0; c < channels; ++c) prob[base + (long long)c * inner] /= sum;
    }
}

// Threads: outer*inner. dx = (dy - sum_c dy*prob) * prob.
extern "C" __global__ void softmax_backward(const float* prob, const float* dy, int outer,
                                            int channels, int inner, float* dx) {
    GRID_STRIDE_LOOP(i, outer * inner) {
        int s = i % inner;
        int o = i / inner;
        long long base = (long long)o * channels * inner + s;
        float dot = 0.0f;
        for (int c = 0; c < channels; ++c) {
            long long at = base + (long long)c * inner;
            dot += dy[at] * prob[at];
        }
        for (int c = 0; c < channels; ++c) {
            long long at = base + (long long)c * inner;
            dx[at] = (dy[at] - dot) * prob[at];
        }
    }
}

// Whether position i's label is ignored, and the label as an int.
#define LABEL_AT(label, i) ((int)(label)[i])
#define IGNORED(l) (has_ignore && (l) == ignore_label)

// Threads: outer*inner. loss = -log(max(prob[label], FLT_MIN)), valid = 1; ignored
// positions: loss 0, valid 0. A label outside [0, channels) (the CPU layer's error; callers
// check labels on the host) reads nothing and gives loss NaN, valid 1.
extern "C" __global__ void softmax_loss_forward(const float* prob, const float* label,
                                                int outer, int channels, int inner,
                                                int has_ignore, int ignore_label, float* loss,
                                                float* valid) {
    GRID_STRIDE_LOOP(i, outer * inner) {
        int s = i % inner;
        int o = i / inner;
        int l = LABEL_AT(label, i);
        if (IGNORED(l)) {
            loss[i] = 0.0f;
            valid[i] = 0.0f;
        } else if (l < 0 || l >= channels) {
            loss[i] = SIAMESE_NAN;
            valid[i] = 1.0f;
        } else {
            float p = prob[((long long)o * channels + l) * inner + s];
            loss[i] = -logf(fmaxf(p, SIAMESE_FLT_MIN));
            valid[i] = 1.0f;
        }
    }
}

// Threads: outer*channels*inner. dx = (prob - onehot(label)) * (top_diff[0] / normalizer[0]);
// 0 at ignored positions.
extern "C" __global__ void softmax_loss_backward(const float* prob, const float* label,
                                                 int outer, int channels, int inner,
                                                 int has_ignore, int ignore_label,
                                                 const float* top_diff,
                                                 const float* normalizer, float* dx) {
    float scale = top_diff[0] / normalizer[0];
    GRID_STRIDE_LOOP(i, outer * channels * inner) {
        int s = i % inner;
        int c = (i / inner) % channels;
        int o = i / (inner * channels);
        int l = LABEL_AT(label, o * inner + s);
        float v = prob[i];
        if (IGNORED(l)) {
            v = 0.0f;
        } else if (c == l) {
            v -= 1.0f;
        }
        dx[i] = v * scale;
    }
}

// One thread. out[0] = max(normalizer, 1) with normalizer by mode: 0 FULL: full, 1 VALID:
// sum(valid) (i ascending), 2 BATCH_SIZE: batch, 3 NONE: 1 (Caffe's get_normalizer).
extern "C" __global__ void loss_normalizer(const float* valid, int n, int mode, float full,
                                           float batch, float* out) {
    if (FIRST_THREAD) {
        float v;
        if (mode == 0) {
            v = full;
        } else if (mode == 1) {
            v = 0.0f;
            for (int i = 0; i < n; ++i) v += valid[i];
        } else if (mode == 2) {
            v = batch;
        } else {
            v = 1.0f;
        }
        out[0] = fmaxf(v, 1.0f);
    }
}

// One thread. out[0] = (sum_i x[i], i ascending) / denom[0].
extern "C" __global__ void divide_sum(const float* x, int n, const float* denom, float* out) {
    if (FIRST_THREAD) {
        float sum = 0.0f;
        for (int i = 0; i < n; ++i) sum += x[i];
        out[0] = sum / denom[0];
    }
}

// Threads: outer*inner. correct = 1 when fewer than top_k channels score strictly above the
// label's score, valid = 1; ignored positions: 0 and 0. A label outside [0, channels) gives
// correct NaN, valid 1. Accuracy = divide_sum(correct) over loss_normalizer(valid, mode 1),
// which is 0 when nothing is valid, as the CPU layer.
extern "C" __global__ void accuracy_forward(const float* x, const float* label, int outer,
                                            int channels, int inner, int top_k, int has_ignore,
                                            int ignore_label, float* correct, float* valid) {
    GRID_STRIDE_LOOP(i, outer * inner) {
        int s = i % inner;
        int o = i / inner;
        int l = LABEL_AT(label, i);
        if (IGNORED(l)) {
            correct[i] = 0.0f;
            valid[i] = 0.0f;
        } else if (l < 0 || l >= channels) {
            correct[i] = SIAMESE_NAN;
            valid[i] = 1.0f;
        } else {
            long long base = (long long)o * channels * inner + s;
            float truth = x[base + (long long)l * inner];
            int better = 0;
            for (int c = 0; c < channels; ++c) {
                if (x[base + (long long)c * inner] > truth) ++better;
            }
            correct[i] = better < top_k ? 1.0f : 0.0f;
            valid[i] = 1.0f;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Solver.

// Threads: n. Caffe's SGD step in crates/solver/src/update.rs's order:
// if local_decay != 0: diff += local_decay*data (L2) or local_decay*sign(data) (l1 = 1);
// history = local_rate*diff + momentum*history; diff = history; data -= diff.
extern "C" __global__ void sgd_update(float* data, float* diff, float* history, int n,
                                      float local_rate, float momentum, float local_decay,
                                      int l1) {
    GRID_STRIDE_LOOP(i, n) {
        float w = data[i];
        float g = diff[i];
        if (local_decay != 0.0f) {
            if (l1) {
                g += local_decay * (w > 0.0f ? 1.0f : (w < 0.0f ? -1.0f : 0.0f));
            } else {
                g += local_decay * w;
            }
        }
        float v = local_rate * g + momentum * history[i];
        history[i] = v;
        diff[i] = v;
        data[i] = w - v;
    }
}
