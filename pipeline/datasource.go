package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/fleetcal/fleetcal/model"
)

// DataSource is a decoded data_source entry: what a DataLoader is opened
// from. Package data implements it for its types ("npy", "images", "idx"
// and the types of data.Register); a value travels to a fleet's workers as
// its TypeName and its JSON encoding, which DecodeDataSourceType decodes
// back through the registry. Paths are resolved when the value is decoded
// (against the config file's folder), so a value reads the same files
// wherever it is opened.
type DataSource interface {
	// TypeName is the name the type is registered under (RegisterDataSource).
	TypeName() string
	// Open builds the loader for a model with these inputs; ann, when not
	// nil, is the engine's annotations file (POT's labels). The loader must
	// be safe for concurrent Item calls.
	Open(ctx context.Context, inputs []TensorInfo, ann *Annotations) (DataLoader, error)
	// Files lists the files Open reads, for digests and for shipping them
	// to workers.
	Files() ([]DataFile, error)
	// Rebase returns a copy that reads each file of Files from
	// filepath.Join(dir, file.Ship): where a worker downloaded shipped data.
	Rebase(dir string) DataSource
}

// DataFile is one file a DataSource reads.
type DataFile struct {
	// Path is where the file is read.
	Path string
	// Ship is its slash-separated name relative to a download folder, unique
	// within the data source (see DataSource.Rebase).
	Ship string
}

// DataSourceDecoder decodes a data_source entry of one type: raw is the
// entry as written (an object, or POT's plain string form), and relative
// paths resolve against dir ("" keeps them relative to the working
// directory). Errors name the key concerned ("data_source.path: ...").
type DataSourceDecoder func(raw json.RawMessage, dir string) (DataSource, error)

var dataSources = NewRegistry[DataSourceDecoder]("pipeline: data source")

// untyped decodes an entry without a type (data.Register sets it).
var untyped DataSourceDecoder

// RegisterDataSource makes a data source type available by name: a config's
// data_source with "type": name is decoded by d, here and on every worker
// (a worker binary registers the same types; see package worker). It panics
// when name is empty or taken or d is nil: programming errors.
func RegisterDataSource(name string, d DataSourceDecoder) {
	if d == nil {
		panic("pipeline: RegisterDataSource with a nil decoder")
	}
	dataSources.Register(name, d)
}

// RegisterUntypedDataSource sets the decoder of data_source entries that
// name no type (POT's "data_source": "calib/"): package data registers one
// that guesses the type from the files. It panics when one is set already.
func RegisterUntypedDataSource(d DataSourceDecoder) {
	if d == nil || untyped != nil {
		panic("pipeline: RegisterUntypedDataSource called twice or with nil")
	}
	untyped = d
}

// DataSourceNames lists the registered data source types, sorted.
func DataSourceNames() []string { return dataSources.Names() }

// builtinDataImport is what registers the built-in data source types.
const builtinDataImport = `import _ "github.com/fleetcal/fleetcal/data"`

// DecodeDataSource decodes a data_source entry through the registry: an
// object whose "type" names a registered type, or an entry without a type
// (POT's string form) for the untyped decoder. Relative paths resolve
// against dir.
func DecodeDataSource(raw json.RawMessage, dir string) (DataSource, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || isNull(raw) {
		return nil, dataErrorf(ErrBadDataConfig, "data_source: empty")
	}
	var typ string
	if raw[0] == '{' {
		var head struct {
			Type json.RawMessage `json:"type"`
		}
		if err := json.Unmarshal(raw, &head); err != nil {
			return nil, dataErrorf(ErrBadDataConfig, "data_source: %v", err)
		}
		if len(head.Type) > 0 && !isNull(head.Type) {
			if err := json.Unmarshal(head.Type, &typ); err != nil {
				return nil, dataErrorf(ErrBadDataConfig, "data_source.type: want a string, got %s", head.Type)
			}
		}
	}
	if typ == "" {
		if untyped == nil {
			return nil, dataErrorf(ErrUnknownDataSource, "data_source.type: no type given, and nothing guesses one; %s registers the built-in types", builtinDataImport)
		}
		return untyped(raw, dir)
	}
	return DecodeDataSourceType(typ, raw, dir)
}

// DecodeDataSourceType decodes raw as a data source of the registered type
// typ; an unknown type is an error wrapping ErrUnknownDataSource that lists
// the registered ones and the closest name.
func DecodeDataSourceType(typ string, raw json.RawMessage, dir string) (DataSource, error) {
	d, ok := dataSources.Get(typ)
	if !ok {
		return nil, unknownDataSource(typ)
	}
	return d(raw, dir)
}

func unknownDataSource(typ string) error {
	names := DataSourceNames()
	if len(names) == 0 {
		return dataErrorf(ErrUnknownDataSource, "data_source.type: unknown type %q; none is registered: %s registers the built-in types (npy, images, idx)", typ, builtinDataImport)
	}
	hint := ""
	if s := model.Suggest(typ, names); s != "" {
		hint = fmt.Sprintf(" (did you mean %q?)", s)
	}
	return dataErrorf(ErrUnknownDataSource, "data_source.type: unknown type %q%s; valid types: %s", typ, hint, strings.Join(names, ", "))
}

// Annotations is POT's annotations entry: the file of labels a data source
// attaches to its samples (package data reads a JSON object {"sample":
// label} or name,label CSV rows). Path is resolved when the config is
// loaded.
type Annotations struct {
	Path string `json:"path"`
}

// UnmarshalJSON decodes {"path": "labels.json"} or the plain string form
// "labels.json"; unknown keys are an error naming the key.
func (a *Annotations) UnmarshalJSON(b []byte) error {
	return a.decode(b, "annotations")
}

// decode decodes b as UnmarshalJSON does; errors name key.
func (a *Annotations) decode(b []byte, key string) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || isNull(b) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var p string
		if err := json.Unmarshal(b, &p); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		*a = Annotations{Path: p}
		return nil
	}
	type plain Annotations
	var v plain
	if err := DecodeStrict(b, &v, key); err != nil {
		return dataErrorf(ErrBadDataConfig, "%s", strings.Replace(err.Error(), ": want an object:", ": want an object or a path string:", 1))
	}
	*a = Annotations(v)
	return nil
}

// ResolvePath joins a relative p to dir ("" and absolute paths are kept).
func ResolvePath(dir, p string) string {
	if p == "" || dir == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// kindError is an error of one of the sentinel kinds above whose message is
// only its own text: errors.Is finds the kind without the kind's words
// cluttering a message that already names the key or file.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// dataErrorf formats an error (%w allowed) that also matches kind.
func dataErrorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}
