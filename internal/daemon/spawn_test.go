package daemon

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestSpecEncodes checks that a Spec whose Config has every function
// field set still encodes: Start passes it to the daemon as JSON, and a
// function field without `json:"-"` broke every daemon mount once.
func TestSpecEncodes(t *testing.T) {
	var spec Spec
	cfg := reflect.ValueOf(&spec.Config).Elem()
	for i := 0; i < cfg.NumField(); i++ {
		f := cfg.Field(i)
		if f.Kind() == reflect.Func && f.CanSet() {
			f.Set(reflect.MakeFunc(f.Type(), func([]reflect.Value) []reflect.Value {
				panic("not called")
			}))
		}
	}
	if _, err := json.Marshal(spec); err != nil {
		t.Fatalf("a Spec with the Config's function fields set: %v", err)
	}
}
