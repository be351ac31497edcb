package pipeline

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestDataSourceNoneRegistered: without package data (nothing registered)
// the error says which import registers the built-in types.
func TestDataSourceNoneRegistered(t *testing.T) {
	saved, savedUntyped := dataSources, untyped
	defer func() { dataSources, untyped = saved, savedUntyped }()
	dataSources, untyped = NewRegistry[DataSourceDecoder]("pipeline: data source"), nil
	for _, raw := range []string{`{"type": "npy", "path": "calib"}`, `"calib"`} {
		_, err := DecodeDataSource(json.RawMessage(raw), "")
		if !errors.Is(err, ErrUnknownDataSource) || !strings.Contains(err.Error(), `import _ "github.com/fleetcal/fleetcal/data" registers the built-in types`) {
			t.Errorf("%s: err = %v", raw, err)
		}
	}
}
