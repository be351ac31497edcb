package reduce

import "math"

func sameBits(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }
