package main

import (
	"math"
	"sort"
)

// Summary condenses the repetitions of one metric on one system.
type Summary struct {
	// N is the number of repetitions that produced a value.
	N int
	// Median is the median of the values (the mean of the two middle ones
	// for an even count).
	Median float64
	// Min and Max bound the values.
	Min, Max float64
}

// Summarize returns the median, minimum and maximum of values. NaN values
// (failed or inapplicable repetitions) are ignored; with no value left,
// every field but N is NaN.
func Summarize(values []float64) Summary {
	var v []float64
	for _, x := range values {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return Summary{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	sort.Float64s(v)
	s := Summary{N: len(v), Min: v[0], Max: v[len(v)-1]}
	if n := len(v); n%2 == 1 {
		s.Median = v[n/2]
	} else {
		s.Median = (v[n/2-1] + v[n/2]) / 2
	}
	return s
}

// Ratio returns value/ref, the figure relative to the reference system
// (kernel overlayfs), or NaN when either is missing or ref is zero.
// Times give "x times as long", throughputs "x times as fast"; the metric's
// direction says which way is better.
func Ratio(value, ref float64) float64 {
	if math.IsNaN(value) || math.IsNaN(ref) || ref == 0 {
		return math.NaN()
	}
	return value / ref
}

// Slowdown returns how many times slower than the reference a value is,
// whatever the metric's direction: value/ref for times, ref/value for
// throughputs. It is what the plot shows, so that up is always worse.
func Slowdown(value, ref float64, higherIsBetter bool) float64 {
	if higherIsBetter {
		return Ratio(ref, value)
	}
	return Ratio(value, ref)
}
