package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// DecodeStrict decodes the JSON object raw into the struct pointed to by v,
// refusing keys that v has no field for. Errors name the key by its path
// (e.g. "engine.metric: unknown key \"topk\"; valid keys: name, top_k").
// Nested structs, pointers to structs and slices of structs are checked the
// same way; a type with its own UnmarshalJSON decodes itself.
func DecodeStrict(raw []byte, v any, path string) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		panic("pipeline: DecodeStrict needs a non-nil pointer")
	}
	return decodeValue(raw, rv.Elem(), path)
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func decodeValue(raw []byte, v reflect.Value, path string) error {
	if isNull(raw) {
		return nil
	}
	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		return wrapJSON(json.Unmarshal(raw, v.Addr().Interface()), path)
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return decodeValue(raw, v.Elem(), path)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.Struct && v.Type().Elem().Kind() != reflect.Pointer {
			break
		}
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return wrapJSON(err, path)
		}
		s := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, it := range items {
			if err := decodeValue(it, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Struct:
		return decodeStruct(raw, v, path)
	}
	return wrapJSON(json.Unmarshal(raw, v.Addr().Interface()), path)
}

func decodeStruct(raw []byte, v reflect.Value, path string) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return fmt.Errorf("%s: want an object: %w", orTop(path), err)
	}
	fields := jsonFields(v.Type())
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		idx, ok := fields[k]
		if !ok {
			return fmt.Errorf("%s: unknown key %q; valid keys: %s", orTop(path), k, strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
		}
		if err := decodeValue(obj[k], v.FieldByIndex(idx), join(path, k)); err != nil {
			return err
		}
	}
	return nil
}

// jsonFields maps the JSON names of t's exported fields to their index
// path; fields of embedded structs without a JSON name are promoted.
func jsonFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag, hasTag := f.Tag.Lookup("json")
		if f.Anonymous && f.Type.Kind() == reflect.Struct && !hasTag {
			for k, idx := range jsonFields(f.Type) {
				out[k] = append([]int{i}, idx...)
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		name := f.Name
		if hasTag {
			n, _, _ := strings.Cut(tag, ",")
			if n == "-" {
				continue
			}
			if n != "" {
				name = n
			}
		}
		out[name] = []int{i}
	}
	return out
}

func wrapJSON(err error, path string) error {
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if ok := asType(err, &te); ok {
		return fmt.Errorf("%s: want %s, got JSON %s", orTop(path), te.Type, te.Value)
	}
	return fmt.Errorf("%s: %w", orTop(path), err)
}

func asType(err error, te **json.UnmarshalTypeError) bool {
	t, ok := err.(*json.UnmarshalTypeError)
	if ok {
		*te = t
	}
	return ok
}

func isNull(raw []byte) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orTop(path string) string {
	if path == "" {
		return "config"
	}
	return path
}

// CheckDuplicateKeys returns an error naming the path of the first key an
// object of the JSON document raw repeats (e.g. "engine.threads: key given
// twice"): encoding/json keeps the last value silently. A document that is
// not valid JSON passes; the decoder reports its syntax.
func CheckDuplicateKeys(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := walkKeys(dec, ""); err != nil && err != errSyntax {
		return err
	}
	return nil
}

// errSyntax stops walkKeys on a malformed document.
var errSyntax = errors.New("syntax")

func walkKeys(dec *json.Decoder, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return errSyntax
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return errSyntax
			}
			k, _ := kt.(string)
			if seen[k] {
				return fmt.Errorf("%s: key given twice (JSON would keep the last one silently); remove one", join(path, k))
			}
			seen[k] = true
			if err := walkKeys(dec, join(path, k)); err != nil {
				return err
			}
		}
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if err := walkKeys(dec, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return errSyntax
	}
	return nil
}
