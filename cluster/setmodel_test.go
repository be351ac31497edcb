package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/fleetcal/fleetcal/model"
	"github.com/fleetcal/fleetcal/model/onnxpb"
	"github.com/fleetcal/fleetcal/pipeline"
)

// bigModel is convnet_op13 with an unused 64 MiB initializer: its upload
// takes hundreds of Object Store chunks.
func bigModel(t *testing.T) *model.CompressedModel {
	t.Helper()
	m := loadModel(t, "convnet_op13.onnx")
	g := m.Models()[0].Proto.GetGraph()
	const n = 16 << 20 // float32 values: 64 MiB
	g.Initializer = append(g.Initializer, &onnxpb.TensorProto{Name: proto.String("padding"), Dims: []int64{n},
		DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: make([]byte, 4*n)})
	return m
}

// TestSetModelCancel: SetModel's ctx cancels the model upload. With ctx
// cancelled before the call, or while the model's chunks are being
// stored, SetModel returns context.Canceled and the engine has no model
// (Predict: ErrNoModel).
func TestSetModelCancel(t *testing.T) {
	srv := startServer(t, ServerOptions{})
	nc := connect(t, srv)
	d := makeDataset(t, 2, 1)
	m := bigModel(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		// cancelWhen returns once the upload should be cancelled.
		cancelWhen func(t *testing.T)
	}{
		{"before", nil},
		{"during", func(t *testing.T) {
			// Cancel once the first chunks are stored.
			checkFor(t, 30*time.Second, time.Millisecond, func() error {
				s, err := js.Stream(t.Context(), "OBJ_"+ModelsBucket)
				if err != nil {
					return err
				}
				info, err := s.Info(t.Context())
				if err != nil {
					return err
				}
				if info.State.Msgs == 0 {
					return fmt.Errorf("no chunk stored yet")
				}
				return nil
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, nc, d.spec(), EngineOptions{})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tc.cancelWhen == nil {
				cancel()
			}
			done := make(chan error, 1)
			go func() { done <- e.SetModel(ctx, m) }()
			if tc.cancelWhen != nil {
				tc.cancelWhen(t)
				cancel()
			}
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("SetModel: %v, want context.Canceled", err)
			}
			if _, err := e.Predict(t.Context(), pipeline.PredictOptions{}); !errors.Is(err, ErrNoModel) {
				t.Errorf("Predict after a cancelled SetModel: %v, want ErrNoModel", err)
			}
		})
	}
}
