package pipeline

import (
	"reflect"
	"testing"
)

func TestRegistry(t *testing.T) {
	r := NewRegistry[int]("thing")
	r.Register("b", 2)
	r.Register("a", 1)
	if v, ok := r.Get("b"); !ok || v != 2 {
		t.Errorf("Get(b) = %v, %v", v, ok)
	}
	if _, ok := r.Get("c"); ok {
		t.Error("Get(c) found a value")
	}
	if got := r.Names(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("Names() = %v, want [a b]", got)
	}
	for name, want := range map[string]string{"a": `thing "a" registered twice`, "": "thing registered with an empty name"} {
		func() {
			defer func() {
				if got := recover(); got != want {
					t.Errorf("Register(%q): panic %v, want %q", name, got, want)
				}
			}()
			r.Register(name, 3)
		}()
	}
}
