package data

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/fleetcal/fleetcal/pipeline"
)

func TestAnnotations(t *testing.T) {
	tests := []struct {
		name, file, content string
		want                []any // labels of a.npy, b.npy
	}{
		{name: "JSON", file: "labels.json", content: `{"a": 1, "b.npy": "cat"}`, want: []any{1, "cat"}},
		{name: "CSV with header", file: "labels.csv", content: "name,label\na.npy,3\nb,dog\n", want: []any{3, "dog"}},
		{name: "CSV without header", file: "labels.csv", content: "a,0\n\"b\", 1\n", want: []any{0, 1}},
		{name: "CSV with folders", file: "labels.txt", content: "calib/a.npy,2\ncalib/b.npy,5\n", want: []any{2, 5}},
		{name: "JSON without extension", file: "labels", content: ` {"calib/a": 4, "b": 9}`, want: []any{4, 9}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			for _, n := range []string{"a.npy", "b.npy"} {
				writeFile(t, filepath.Join(base, "calib"), n, npyBytes(t, [1]float32{}))
			}
			writeFile(t, base, tc.file, []byte(tc.content))
			l, err := Open(t.Context(), Config{Type: "npy", Path: "calib"}, &Annotations{Path: tc.file}, base, []pipeline.TensorInfo{in("x", pipeline.Float32, 1)})
			if err != nil {
				t.Fatal(err)
			}
			var got []any
			for i := range l.Len() {
				s, err := l.Item(t.Context(), i)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, s.Annotation)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("labels %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAnnotationsErrors(t *testing.T) {
	tests := []struct {
		name, file, content, err string
		is                       error
	}{
		{name: "missing labels", file: "labels.json", content: `{"a": 0}`,
			err: "annotations labels.json: no label for 6 of 7 samples: b.npy, c.npy, d.npy, e.npy, f.npy, ...", is: ErrMissingAnnotation},
		{name: "CSV fields", file: "labels.csv", content: "a,0\nb,1,2\n", err: "labels.csv: line 2: 3 fields, want 2 (name,label)", is: ErrBadFile},
		{name: "CSV twice", file: "labels.csv", content: "name,label\na.npy,0\nx/a.npy,1\n", err: `labels.csv: line 3: sample "a.npy": labelled twice`},
		{name: "JSON float label", file: "labels.json", content: `{"a": 1.5}`, err: `labels.json: sample "a": label 1.5 is not an integer`},
		{name: "JSON list label", file: "labels.json", content: `{"a": [1]}`, err: `labels.json: sample "a": label [1] is not an integer or a string`},
		{name: "JSON not an object", file: "labels.json", content: `[1, 2]`, err: `labels.json: want a JSON object {"sample": label}`},
		{name: "no such file", file: "nope.json", err: "annotations: open "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			for _, n := range []string{"a", "b", "c", "d", "e", "f", "g"} {
				writeFile(t, base, n+".npy", npyBytes(t, [1]float32{}))
			}
			if tc.content != "" {
				writeFile(t, base, tc.file, []byte(tc.content))
			}
			_, err := Open(t.Context(), Config{Type: "npy", Path: "."}, &Annotations{Path: tc.file}, base, []pipeline.TensorInfo{in("x", 0, 1)})
			wantErr(t, err, tc.err)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("%v does not wrap %v", err, tc.is)
			}
		})
	}
}
