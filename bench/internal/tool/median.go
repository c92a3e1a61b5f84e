package tool

import (
	"math"
	"slices"
)

// Median returns the median of v (the mean of the middle two for an
// even count), its minimum and its maximum; NaN for none.
func Median(v []float64) (med, lo, hi float64) {
	if len(v) == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	v = slices.Sorted(slices.Values(v))
	med = v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return med, v[0], v[len(v)-1]
}
