package timestamp

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "10m", want: now.Add(-10 * time.Minute)},
		{in: "1h30m", want: now.Add(-90 * time.Minute)},
		{in: "2024-05-06T07:00:00Z", want: time.Date(2024, 5, 6, 7, 0, 0, 0, time.UTC)},
		{in: "2024-05-06T07:00:00.5Z", want: time.Date(2024, 5, 6, 7, 0, 0, 5e8, time.UTC)},
		{in: "2024-05-06T09:00:00+02:00", want: time.Date(2024, 5, 6, 7, 0, 0, 0, time.UTC)},
		{in: "2024-05-06T07:00Z", want: time.Date(2024, 5, 6, 7, 0, 0, 0, time.UTC)},
		{in: "2024-05-06T07:00:00", want: time.Date(2024, 5, 6, 7, 0, 0, 0, time.Local)},
		{in: "2024-05-06", want: time.Date(2024, 5, 6, 0, 0, 0, 0, time.Local)},
		{in: "1714979289", want: time.Unix(1714979289, 0)},
		{in: "1714979289.25", want: time.Unix(1714979289, 25e7)},
		{in: "0", want: time.Unix(0, 0)},
		{in: "yesterday", bad: true},
		{in: "2024-13-01", bad: true},
	} {
		got, err := Parse(tc.in, now)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: got %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%q: got %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
