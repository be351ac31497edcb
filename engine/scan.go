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
