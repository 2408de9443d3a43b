package veeam

import "testing"

var timeCases = []string{
	"2026-11-17T21:57:09.0000000+00:00", "2024-01-01T00:00:00Z", "2024-02-29T23:59:59.123456789-03:30",
	"2023-02-29T00:00:00Z", "2024-01-01 10:00:00Z", "2024-01-01T10:00:00", "2024-01-01", "2024-13-01T00:00:00Z",
	"2024-01-01T24:00:00Z", "2024-01-01T00:00:60Z", "2024-01-01T00:00:00.Z", "2024-01-01T00:00:00.1234567891Z",
	"2024-01-01T00:00:00+24:00", "2024-01-01T00:00:00+01:60", "0000-01-01T00:00:00Z", " 2024-01-01T00:00:00Z",
	"2024-01-01t00:00:00z", "bogus", "",
}

// checkTime compares ParseTimeBytes with ParseTime: same verdict, same
// instant.
func checkTime(t *testing.T, s string) {
	want, wok := ParseTime(s)
	got, ok := ParseTimeBytes([]byte(s))
	if ok != wok || !got.Equal(want) {
		t.Fatalf("%q: %v %v, want %v %v", s, got, ok, want, wok)
	}
}

func TestParseTimeBytes(t *testing.T) {
	for _, s := range timeCases {
		checkTime(t, s)
	}
}

func FuzzParseTimeBytes(f *testing.F) {
	for _, s := range timeCases {
		f.Add(s)
	}
	f.Fuzz(checkTime)
}

func TestNormalizeIDBytes(t *testing.T) {
	for _, s := range []string{"", "abc", "ABC", " a ", "urn:veeam:Plan:ABC", "URN:VEEAM:x:y", "a:b", "\x00a", "é"} {
		if got, want := NormalizeIDBytes([]byte(s)), NormalizeID(s); got != want {
			t.Errorf("%q: %q, want %q", s, got, want)
		}
	}
}
