package main

import (
	"math"
	"testing"
)

func TestSummarize(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name           string
		in             []float64
		n              int
		med, min, max  float64
		wantAllMissing bool
	}{
		{name: "odd", in: []float64{3, 1, 2}, n: 3, med: 2, min: 1, max: 3},
		{name: "even", in: []float64{4, 1, 3, 2}, n: 4, med: 2.5, min: 1, max: 4},
		{name: "one", in: []float64{7}, n: 1, med: 7, min: 7, max: 7},
		{name: "nan ignored", in: []float64{nan, 5, 1, nan}, n: 2, med: 3, min: 1, max: 5},
		{name: "empty", in: nil, wantAllMissing: true},
		{name: "all nan", in: []float64{nan, nan}, wantAllMissing: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Summarize(tt.in)
			if tt.wantAllMissing {
				if s.N != 0 || !math.IsNaN(s.Median) || !math.IsNaN(s.Min) || !math.IsNaN(s.Max) {
					t.Fatalf("Summarize(%v) = %+v, want N=0 and NaNs", tt.in, s)
				}
				return
			}
			if s.N != tt.n || s.Median != tt.med || s.Min != tt.min || s.Max != tt.max {
				t.Fatalf("Summarize(%v) = %+v, want N=%d median=%v min=%v max=%v", tt.in, s, tt.n, tt.med, tt.min, tt.max)
			}
		})
	}
}

func TestSummarizeDoesNotReorderInput(t *testing.T) {
	in := []float64{3, 1, 2}
	Summarize(in)
	if in[0] != 3 || in[1] != 1 || in[2] != 2 {
		t.Fatalf("input reordered: %v", in)
	}
}

func TestRatioAndSlowdown(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name         string
		value, ref   float64
		higherBetter bool
		ratio, slow  float64
	}{
		{name: "time twice as long", value: 2, ref: 1, ratio: 2, slow: 2},
		{name: "time half", value: 0.5, ref: 1, ratio: 0.5, slow: 0.5},
		{name: "throughput half", value: 5, ref: 10, higherBetter: true, ratio: 0.5, slow: 2},
		{name: "throughput double", value: 20, ref: 10, higherBetter: true, ratio: 2, slow: 0.5},
		{name: "zero ref", value: 1, ref: 0, ratio: nan, slow: nan},
		{name: "missing value", value: nan, ref: 1, ratio: nan, slow: nan},
		{name: "missing ref", value: 1, ref: nan, ratio: nan, slow: nan},
	}
	same := func(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Ratio(tt.value, tt.ref); !same(got, tt.ratio) {
				t.Errorf("Ratio(%v, %v) = %v, want %v", tt.value, tt.ref, got, tt.ratio)
			}
			if got := Slowdown(tt.value, tt.ref, tt.higherBetter); !same(got, tt.slow) {
				t.Errorf("Slowdown(%v, %v, %v) = %v, want %v", tt.value, tt.ref, tt.higherBetter, got, tt.slow)
			}
		})
	}
}
