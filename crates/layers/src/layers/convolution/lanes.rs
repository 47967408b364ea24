//! The vectors Winograd's transforms work on: rows of 8 and 4 floats, as AVX registers where
//! the CPU has AVX2, else as arrays; the same operations in the same order, so the same bits.

/// Element-wise arithmetic on a row of lanes (no fused multiply-add: the transforms' bits do
/// not depend on the instruction set).
pub(super) trait Lanes: Copy {
    fn splat(x: f32) -> Self;
    fn add(self, other: Self) -> Self;
    fn sub(self, other: Self) -> Self;
    fn scale(self, k: f32) -> Self;
}

/// Rows of 8 (`Wide`) and 4 (`Narrow`) lanes, their loads and stores, and the transposes
/// between them.
pub(super) trait Simd: Copy {
    type Wide: Lanes;
    type Narrow: Lanes;
    /// The first 8 values of `src`.
    fn load8(self, src: &[f32]) -> Self::Wide;
    fn store8(self, v: Self::Wide, dst: &mut [f32]);
    /// The first 4 values of `src`.
    fn load4(self, src: &[f32]) -> Self::Narrow;
    fn store4(self, v: Self::Narrow, dst: &mut [f32]);
    fn transpose8(self, rows: [Self::Wide; 8]) -> [Self::Wide; 8];
    /// 4 rows of 8 lanes to 8 rows of 4.
    fn wide_to_narrow(self, rows: [Self::Wide; 4]) -> [Self::Narrow; 8];
    /// 8 rows of 4 lanes to 4 rows of 8.
    fn narrow_to_wide(self, rows: [Self::Narrow; 8]) -> [Self::Wide; 4];
}

/// Arrays: any CPU.
#[derive(Clone, Copy, Debug)]
pub(super) struct Portable;

impl<const L: usize> Lanes for [f32; L] {
    #[inline(always)]
    fn splat(x: f32) -> Self {
        [x; L]
    }

    #[inline(always)]
    fn add(self, other: Self) -> Self {
        std::array::from_fn(|i| self[i] + other[i])
    }

    #[inline(always)]
    fn sub(self, other: Self) -> Self {
        std::array::from_fn(|i| self[i] - other[i])
    }

    #[inline(always)]
    fn scale(self, k: f32) -> Self {
        self.map(|v| k * v)
    }
}

impl Simd for Portable {
    type Wide = [f32; 8];
    type Narrow = [f32; 4];

    #[inline(always)]
    fn load8(self, src: &[f32]) -> [f32; 8] {
        src[..8].try_into().expect("8 values")
    }

    #[inline(always)]
    fn store8(self, v: [f32; 8], dst: &mut [f32]) {
        dst[..8].copy_from_slice(&v);
    }

    #[inline(always)]
    fn load4(self, src: &[f32]) -> [f32; 4] {
        src[..4].try_into().expect("4 values")
    }

    #[inline(always)]
    fn store4(self, v: [f32; 4], dst: &mut [f32]) {
        dst[..4].copy_from_slice(&v);
    }

    #[inline(always)]
    fn transpose8(self, rows: [[f32; 8]; 8]) -> [[f32; 8]; 8] {
        std::array::from_fn(|c| std::array::from_fn(|r| rows[r][c]))
    }

    #[inline(always)]
    fn wide_to_narrow(self, rows: [[f32; 8]; 4]) -> [[f32; 4]; 8] {
        std::array::from_fn(|c| std::array::from_fn(|r| rows[r][c]))
    }

    #[inline(always)]
    fn narrow_to_wide(self, rows: [[f32; 4]; 8]) -> [[f32; 8]; 4] {
        std::array::from_fn(|c| std::array::from_fn(|r| rows[r][c]))
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) use avx::Avx;

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    use super::{Lanes, Simd};

    /// AVX registers. A value exists only on a CPU with AVX2 and FMA ([`Avx::detect`]), and
    /// its code runs compiled for them ([`with_lanes`]): that makes the intrinsics below sound.
    #[derive(Clone, Copy, Debug)]
    pub(in super::super) struct Avx(());

    impl Avx {
        pub fn detect() -> Option<Avx> {
            (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")).then_some(Avx(()))
        }
    }

    // SAFETY (every `unsafe` block below): AVX intrinsics, run on a CPU that has AVX2 (the
    // only way to reach them is through an `Avx` value); loads and stores are bounds-checked.
    impl Lanes for __m256 {
        #[inline(always)]
        fn splat(x: f32) -> Self {
            unsafe { _mm256_set1_ps(x) }
        }

        #[inline(always)]
        fn add(self, other: Self) -> Self {
            unsafe { _mm256_add_ps(self, other) }
        }

        #[inline(always)]
        fn sub(self, other: Self) -> Self {
            unsafe { _mm256_sub_ps(self, other) }
        }

        #[inline(always)]
        fn scale(self, k: f32) -> Self {
            unsafe { _mm256_mul_ps(_mm256_set1_ps(k), self) }
        }
    }

    impl Lanes for __m128 {
        #[inline(always)]
        fn splat(x: f32) -> Self {
            unsafe { _mm_set1_ps(x) }
        }

        #[inline(always)]
        fn add(self, other: Self) -> Self {
            unsafe { _mm_add_ps(self, other) }
        }

        #[inline(always)]
        fn sub(self, other: Self) -> Self {
            unsafe { _mm_sub_ps(self, other) }
        }

        #[inline(always)]
        fn scale(self, k: f32) -> Self {
            unsafe { _mm_mul_ps(_mm_set1_ps(k), self) }
        }
    }

    impl Simd for Avx {
        type Wide = __m256;
        type Narrow = __m128;

        #[inline(always)]
        fn load8(self, src: &[f32]) -> __m256 {
            unsafe { _mm256_loadu_ps(src[..8].as_ptr()) }
        }

        #[inline(always)]
        fn store8(self, v: __m256, dst: &mut [f32]) {
            unsafe { _mm256_storeu_ps(dst[..8].as_mut_ptr(), v) }
        }

        #[inline(always)]
        fn load4(self, src: &[f32]) -> __m128 {
            unsafe { _mm_loadu_ps(src[..4].as_ptr()) }
        }

        #[inline(always)]
        fn store4(self, v: __m128, dst: &mut [f32]) {
            unsafe { _mm_storeu_ps(dst[..4].as_mut_ptr(), v) }
        }

        #[inline(always)]
        fn transpose8(self, r: [__m256; 8]) -> [__m256; 8] {
            unsafe {
                let t: [__m256; 8] = [
                    _mm256_unpacklo_ps(r[0], r[1]),
                    _mm256_unpackhi_ps(r[0], r[1]),
                    _mm256_unpacklo_ps(r[2], r[3]),
                    _mm256_unpackhi_ps(r[2], r[3]),
                    _mm256_unpacklo_ps(r[4], r[5]),
                    _mm256_unpackhi_ps(r[4], r[5]),
                    _mm256_unpacklo_ps(r[6], r[7]),
                    _mm256_unpackhi_ps(r[6], r[7]),
                ];
                let u: [__m256; 8] = [
                    _mm256_shuffle_ps::<0x44>(t[0], t[2]),
                    _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
                    _mm256_shuffle_ps::<0x44>(t[1], t[3]),
                    _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
                    _mm256_shuffle_ps::<0x44>(t[4], t[6]),
                    _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
                    _mm256_shuffle_ps::<0x44>(t[5], t[7]),
                    _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
                ];
                [
                    _mm256_permute2f128_ps::<0x20>(u[0], u[4]),
                    _mm256_permute2f128_ps::<0x20>(u[1], u[5]),
                    _mm256_permute2f128_ps::<0x20>(u[2], u[6]),
                    _mm256_permute2f128_ps::<0x20>(u[3], u[7]),
                    _mm256_permute2f128_ps::<0x31>(u[0], u[4]),
                    _mm256_permute2f128_ps::<0x31>(u[1], u[5]),
                    _mm256_permute2f128_ps::<0x31>(u[2], u[6]),
                    _mm256_permute2f128_ps::<0x31>(u[3], u[7]),
                ]
            }
        }

        #[inline(always)]
        fn wide_to_narrow(self, r: [__m256; 4]) -> [__m128; 8] {
            unsafe {
                let (t0, t1) = (
                    _mm256_unpacklo_ps(r[0], r[1]),
                    _mm256_unpackhi_ps(r[0], r[1]),
                );
                let (t2, t3) = (
                    _mm256_unpacklo_ps(r[2], r[3]),
                    _mm256_unpackhi_ps(r[2], r[3]),
                );
                // Column c of the rows: c and c + 4 in the two halves of one register.
                let u = [
                    _mm256_shuffle_ps::<0x44>(t0, t2),
                    _mm256_shuffle_ps::<0xEE>(t0, t2),
                    _mm256_shuffle_ps::<0x44>(t1, t3),
                    _mm256_shuffle_ps::<0xEE>(t1, t3),
                ];
                [
                    _mm256_castps256_ps128(u[0]),
                    _mm256_castps256_ps128(u[1]),
                    _mm256_castps256_ps128(u[2]),
                    _mm256_castps256_ps128(u[3]),
                    _mm256_extractf128_ps::<1>(u[0]),
                    _mm256_extractf128_ps::<1>(u[1]),
                    _mm256_extractf128_ps::<1>(u[2]),
                    _mm256_extractf128_ps::<1>(u[3]),
                ]
            }
        }

        #[inline(always)]
        fn narrow_to_wide(self, r: [__m128; 8]) -> [__m256; 4] {
            unsafe {
                // Rows k and k + 4 side by side, then a 4×4 transpose in each half.
                let a: [__m256; 4] = std::array::from_fn(|k| _mm256_set_m128(r[k + 4], r[k]));
                let (t0, t1) = (
                    _mm256_unpacklo_ps(a[0], a[1]),
                    _mm256_unpackhi_ps(a[0], a[1]),
                );
                let (t2, t3) = (
                    _mm256_unpacklo_ps(a[2], a[3]),
                    _mm256_unpackhi_ps(a[2], a[3]),
                );
                [
                    _mm256_shuffle_ps::<0x44>(t0, t2),
                    _mm256_shuffle_ps::<0xEE>(t0, t2),
                    _mm256_shuffle_ps::<0x44>(t1, t3),
                    _mm256_shuffle_ps::<0xEE>(t1, t3),
                ]
            }
        }
    }
}

/// Portable lanes on CPUs of other architectures; [`Avx::detect`] finds none there.
#[cfg(not(target_arch = "x86_64"))]
pub(super) type Avx = Portable;

#[cfg(not(target_arch = "x86_64"))]
impl Portable {
    pub fn detect() -> Option<Self> {
        None
    }
}

/// Runs `$body` with `$s` bound to the best [`Simd`] this CPU has, compiled for it (through
/// the backend's `vectorized`, which enables the AVX2 and FMA that `Avx::detect` checked).
macro_rules! with_lanes {
    ($s:ident => $body:expr) => {
        match $crate::layers::convolution::lanes::Avx::detect() {
            Some($s) => $crate::backend::vectorized(
                #[inline(always)]
                || $body,
            ),
            None => {
                let $s = $crate::layers::convolution::lanes::Portable;
                $body
            }
        }
    };
}
pub(super) use with_lanes;

#[cfg(test)]
mod tests {
    use super::*;

    fn rows8(seed: f32) -> [[f32; 8]; 8] {
        std::array::from_fn(|r| std::array::from_fn(|c| (r * 8 + c) as f32 + seed))
    }

    /// The AVX transposes and arithmetic give what the arrays give.
    #[test]
    fn avx_lanes_match_the_arrays() {
        let Some(avx) = Avx::detect() else {
            return;
        };
        let p = Portable;
        let rows = rows8(0.25);
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let check = |got: &[f32], want: &[f32]| assert_eq!(got, want);
        crate::backend::vectorized(
            #[inline(always)]
            || {
                let wide: [_; 8] = std::array::from_fn(|r| avx.load8(&flat[r * 8..]));
                let mut out = vec![0.0; 64];
                for (r, v) in avx.transpose8(wide).into_iter().enumerate() {
                    avx.store8(v, &mut out[r * 8..]);
                }
                check(&out, &p.transpose8(rows).concat());
                let four: [_; 4] = std::array::from_fn(|r| wide[r]);
                let mut out = vec![0.0; 32];
                for (r, v) in avx.wide_to_narrow(four).into_iter().enumerate() {
                    avx.store4(v, &mut out[r * 4..]);
                }
                let four_rows: [[f32; 8]; 4] = std::array::from_fn(|r| rows[r]);
                check(&out, &p.wide_to_narrow(four_rows).concat());
                let narrow: [_; 8] = std::array::from_fn(|r| avx.load4(&flat[r * 8..]));
                let narrow_rows: [[f32; 4]; 8] =
                    std::array::from_fn(|r| rows[r][..4].try_into().unwrap());
                for (r, v) in avx.narrow_to_wide(narrow).into_iter().enumerate() {
                    avx.store8(v, &mut out[r * 8..]);
                }
                check(&out, &p.narrow_to_wide(narrow_rows).concat());
                let (a, b) = (wide[1], wide[6]);
                avx.store8(a.add(b).sub(a.scale(0.3)).add(Lanes::splat(1.5)), &mut out);
                let (x, y) = (rows[1], rows[6]);
                check(
                    &out[..8],
                    &x.add(y).sub(x.scale(0.3)).add(Lanes::splat(1.5)),
                );
            },
        );
    }
}
