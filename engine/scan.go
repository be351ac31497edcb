package engine

/*
// The go command puts CGO_CFLAGS (default -O2) after #cgo CFLAGS, so ask
// GCC for vectorized loops here; clang vectorizes at -O2 already.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include <stddef.h>
#include <stdint.h>
#include <string.h>

// fc_key maps a float's bits to an int32 ordered like the floats (-0 just
// below +0), with NaNs beyond ±Inf on the side of their sign bit. Integer
// min/max reductions vectorize, and are associative even with NaN.
static inline int32_t fc_key(float v) {
	int32_t b;
	memcpy(&b, &v, sizeof b);
	return b ^ ((b >> 31) & 0x7fffffff);
}

// FC_CLONES compiles a function for AVX2 and for the baseline, picking
// one at load time (GCC's function multiversioning, on x86-64 Linux).
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define FC_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define FC_CLONES
#endif

// fc_minmax stores the keys of the least and greatest values of x[0..n).
FC_CLONES static void fc_minmax(const float *x, size_t n, int32_t *lo, int32_t *hi) {
	int32_t l = INT32_MAX, h = INT32_MIN;
	for (size_t i = 0; i < n; i++) {
		int32_t k = fc_key(x[i]);
		l = k < l ? k : l;
		h = k > h ? k : h;
	}
	*lo = l;
	*hi = h;
}

// fc_channel_minmax folds into lo[c], hi[c] the keys of the least and
// greatest values of channel c of x, laid out as [outer][size][inner].
FC_CLONES static void fc_channel_minmax(const float *x, size_t outer, size_t size, size_t inner, int32_t *lo, int32_t *hi) {
	for (size_t o = 0; o < outer; o++) {
		for (size_t c = 0; c < size; c++) {
			int32_t l, h;
			fc_minmax(x + (o * size + c) * inner, inner, &l, &h);
			lo[c] = l < lo[c] ? l : lo[c];
			hi[c] = h > hi[c] ? h : hi[c];
		}
	}
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

// fc_have_avx2 reports whether the CPU runs AVX2 code.
static int fc_have_avx2(void) {
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2");
}

// fc_transpose8 reads eight floats from each of the eight rows p, p+inner,
// ... p+7*inner and transposes them: c[k] holds rows 0-3 of element k (low
// half) and of element k+4 (high half), d[k] the same for rows 4-7.
__attribute__((target("avx2"), always_inline))
static inline void fc_transpose8(const float *p, size_t inner, __m256 c[4], __m256 d[4]) {
	__m256 r0 = _mm256_loadu_ps(p), r1 = _mm256_loadu_ps(p + inner);
	__m256 r2 = _mm256_loadu_ps(p + 2*inner), r3 = _mm256_loadu_ps(p + 3*inner);
	__m256 r4 = _mm256_loadu_ps(p + 4*inner), r5 = _mm256_loadu_ps(p + 5*inner);
	__m256 r6 = _mm256_loadu_ps(p + 6*inner), r7 = _mm256_loadu_ps(p + 7*inner);
	// Per 128-bit half: t0 = r0[0] r1[0] r0[1] r1[1], t1 = r0[2] r1[2] r0[3] r1[3].
	__m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
	__m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
	__m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
	__m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
	c[0] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
	c[1] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
	c[2] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
	c[3] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
	d[0] = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
	d[1] = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
	d[2] = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
	d[3] = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
}

// FC_LO and FC_HI widen the low or high four floats of v to doubles.
#define FC_LO(v) _mm256_cvtps_pd(_mm256_castps256_ps128(v))
#define FC_HI(v) _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))

// fc_sum_rows_tail finishes the rows s[0..n) from element i on, in order.
static void fc_sum_rows_tail(const float *p, size_t inner, size_t i, double *s, int n) {
	for (int r = 0; r < n; r++) {
		double v = s[r];
		for (size_t k = i; k < inner; k++) {
			v += (double)p[r*inner + k];
		}
		s[r] = v;
	}
}

// fc_sum8_avx2 adds to s[r] the floats p[r*inner + i], i = 0 .. inner-1,
// for the eight rows r = 0..7, each row in order, one double addition
// after the other: the bits of the scalar loop
//
//	for (i = 0; i < inner; i++) s[r] += (double)p[r*inner + i];
//
// The rows are read eight floats at a time and transposed, so that one
// vector addition adds element i of four rows; per row the additions stay
// in the order of i (no reassociation, no FMA). Two chains of additions
// (rows 0-3, rows 4-7) run side by side; sixteen rows at a time measured
// slower, their sixteen streams a multiple of 4 KiB apart contending for
// the same L1 cache sets.
__attribute__((target("avx2")))
static void fc_sum8_avx2(const float *p, size_t inner, double *s) {
	__m256d a0 = _mm256_loadu_pd(s), a1 = _mm256_loadu_pd(s + 4);
	size_t i = 0;
	for (; i + 8 <= inner; i += 8) {
		__m256 c[4], d[4];
		fc_transpose8(p + i, inner, c, d);
		for (int k = 0; k < 4; k++) {
			a0 = _mm256_add_pd(a0, FC_LO(c[k]));
			a1 = _mm256_add_pd(a1, FC_LO(d[k]));
		}
		for (int k = 0; k < 4; k++) {
			a0 = _mm256_add_pd(a0, FC_HI(c[k]));
			a1 = _mm256_add_pd(a1, FC_HI(d[k]));
		}
	}
	_mm256_storeu_pd(s, a0);
	_mm256_storeu_pd(s + 4, a1);
	fc_sum_rows_tail(p, inner, i, s, 8);
}

// fc_channel_sums8 adds to sum[c], for the channels c < size rounded down
// to a multiple of 8, the values of channel c of x, laid out as
// [outer][size][inner], in storage order (see fc_sum8_avx2).
static void fc_channel_sums8(const float *x, size_t outer, size_t size, size_t inner, double *sum) {
	for (size_t o = 0; o < outer; o++) {
		for (size_t c = 0; c + 8 <= size; c += 8) {
			fc_sum8_avx2(x + (o*size + c) * inner, inner, sum + c);
		}
	}
}
#else
static int fc_have_avx2(void) { return 0; }
static void fc_channel_sums8(const float *x, size_t outer, size_t size, size_t inner, double *sum) {}
#endif
*/
import "C"

import (
	"math"
	"unsafe"
)

// floatKey and keyFloat are fc_key and its inverse.
func floatKey(v float32) int32 {
	b := int32(math.Float32bits(v))
	return b ^ ((b >> 31) & 0x7fffffff)
}

func keyFloat(k int32) float32 {
	return math.Float32frombits(uint32(k ^ ((k >> 31) & 0x7fffffff)))
}

// Keys of -Inf and +Inf: a key at or beyond them is ±Inf or NaN.
var (
	keyNegInf = floatKey(float32(math.Inf(-1)))
	keyPosInf = floatKey(float32(math.Inf(1)))
)

// minMaxC returns the min and max of data, computed by vectorized C, and
// whether every value is finite. When some value is not finite, mn and mx
// are meaningless.
func minMaxC(data []float32) (mn, mx float32, finite bool) {
	if len(data) == 0 {
		return float32(math.Inf(1)), float32(math.Inf(-1)), true
	}
	var lo, hi C.int32_t
	C.fc_minmax((*C.float)(unsafe.Pointer(&data[0])), C.size_t(len(data)), &lo, &hi)
	l, h := int32(lo), int32(hi)
	return keyFloat(l), keyFloat(h), l > keyNegInf && h < keyPosInf
}

// channelMinMaxC is the min and max of each index of axis, for data laid
// out as [outer][size][inner], and whether every value is finite.
func channelMinMaxC(data []float32, outer, size, inner int) (mins, maxs []float32, finite bool) {
	lo := make([]int32, size)
	hi := make([]int32, size)
	for c := range lo {
		lo[c], hi[c] = math.MaxInt32, math.MinInt32
	}
	finite = true
	if len(data) > 0 && size > 0 {
		C.fc_channel_minmax((*C.float)(unsafe.Pointer(&data[0])), C.size_t(outer), C.size_t(size), C.size_t(inner),
			(*C.int32_t)(unsafe.Pointer(&lo[0])), (*C.int32_t)(unsafe.Pointer(&hi[0])))
	}
	mins, maxs = make([]float32, size), make([]float32, size)
	for c := range size {
		if lo[c] <= keyNegInf || hi[c] >= keyPosInf {
			finite = false
		}
		mins[c], maxs[c] = keyFloat(lo[c]), keyFloat(hi[c])
	}
	return mins, maxs, finite
}

// haveAVX2 tells whether channelSums8 may run (an x86-64 CPU with AVX2, a
// GCC-compatible compiler). Set once, never changed.
var haveAVX2 = C.fc_have_avx2() != 0

// channelSums8 adds to sum[c], for the channels c below size rounded down to
// a multiple of 8, the values of channel c of data, laid out as
// [outer][size][inner], summed in float64 in storage order: the bits of
// channelMeanFinite's loop, eight channels side by side in AVX2 registers.
// It needs haveAVX2.
func channelSums8(data []float32, outer, size, inner int, sum []float64) {
	if size < 8 || len(data) == 0 {
		return
	}
	C.fc_channel_sums8((*C.float)(unsafe.Pointer(&data[0])), C.size_t(outer), C.size_t(size), C.size_t(inner),
		(*C.double)(unsafe.Pointer(&sum[0])))
}
