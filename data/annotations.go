package data

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// LoadAnnotations reads the labels of a data set from a JSON object
// {"sample": label} or a CSV file of name,label rows with an optional header
// (a first row whose name column is name/file/filename/image/sample/id/path
// or whose label column is label/class/target/category). Labels are integers
// (int) or strings. Sample names are file names with or without their
// extension; a directory part ("images/cat.png") is dropped. The format is
// chosen by extension (.json, .csv), else by the first byte ('{' is JSON).
func LoadAnnotations(file string) (map[string]any, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("annotations: %w", err)
	}
	var m map[string]any
	isJSON := hasExt(file, ".json") ||
		(!hasExt(file, ".csv") && bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")))
	if isJSON {
		m, err = parseJSONLabels(raw)
	} else {
		m, err = parseCSVLabels(raw)
	}
	if err != nil {
		return nil, fmt.Errorf("annotations %s: %w", file, err)
	}
	return m, nil
}

func parseJSONLabels(raw []byte) (map[string]any, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, errorf(ErrBadFile, "want a JSON object {\"sample\": label}: %w", err)
	}
	out := make(map[string]any, len(obj))
	for k, v := range obj {
		var label any
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.UseNumber()
		if err := dec.Decode(&label); err != nil {
			return nil, fmt.Errorf("sample %q: %w", k, err)
		}
		switch l := label.(type) {
		case json.Number:
			n, err := strconv.Atoi(l.String())
			if err != nil {
				return nil, errorf(ErrBadFile, "sample %q: label %s is not an integer", k, l)
			}
			label = n
		case string:
		default:
			return nil, errorf(ErrBadFile, "sample %q: label %s is not an integer or a string", k, v)
		}
		if err := addLabel(out, k, label); err != nil {
			return nil, err
		}
	}
	return out, nil
}

var (
	nameHeaders  = []string{"name", "file", "filename", "image", "sample", "id", "path"}
	labelHeaders = []string{"label", "class", "target", "category"}
)

func parseCSVLabels(raw []byte) (map[string]any, error) {
	r := csv.NewReader(bytes.NewReader(raw))
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	r.Comment = '#'
	out := map[string]any{}
	for row := 0; ; row++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, errorf(ErrBadFile, "%w", err)
		}
		line, _ := r.FieldPos(0)
		if len(rec) != 2 {
			return nil, errorf(ErrBadFile, "line %d: %d fields, want 2 (name,label)", line, len(rec))
		}
		name, label := strings.TrimSpace(rec[0]), strings.TrimSpace(rec[1])
		n, nerr := strconv.Atoi(label)
		if row == 0 && nerr != nil && (isOneOf(name, nameHeaders) || isOneOf(label, labelHeaders)) {
			continue // header
		}
		if name == "" {
			return nil, errorf(ErrBadFile, "line %d: empty sample name", line)
		}
		var v any = label
		if nerr == nil {
			v = n
		}
		if err := addLabel(out, name, v); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
	}
	return out, nil
}

func isOneOf(s string, set []string) bool {
	for _, w := range set {
		if strings.EqualFold(s, w) {
			return true
		}
	}
	return false
}

// addLabel stores label under the base name of key, refusing duplicates.
func addLabel(m map[string]any, key string, label any) error {
	k := path.Base(filepath.ToSlash(key))
	if _, dup := m[k]; dup {
		return errorf(ErrBadFile, "sample %q: labelled twice", k)
	}
	m[k] = label
	return nil
}

// labelFor finds the label of the sample read from file name: by the name
// itself, then without its extension.
func labelFor(ann map[string]any, name string) (any, bool) {
	if l, ok := ann[name]; ok {
		return l, true
	}
	l, ok := ann[stem(name)]
	return l, ok
}

// labelsFor returns the label of every sample name, in order; nil when ann
// is nil. Samples without a label are an error listing the first few.
func labelsFor(ann map[string]any, names []string) ([]any, error) {
	if ann == nil {
		return nil, nil
	}
	out := make([]any, len(names))
	var missing []string
	nMissing := 0
	for i, n := range names {
		l, ok := labelFor(ann, n)
		if !ok {
			nMissing++
			if len(missing) < 5 {
				missing = append(missing, n)
			}
			continue
		}
		out[i] = l
	}
	if nMissing > 0 {
		more := ""
		if nMissing > len(missing) {
			more = ", ..."
		}
		return nil, errorf(ErrMissingAnnotation, "no label for %d of %d samples: %s%s", nMissing, len(names), strings.Join(missing, ", "), more)
	}
	return out, nil
}
