package model_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fleetcal/fleetcal/model"
)

// POT's load_model and save_model: a model from its config (paths
// relative to BaseDir), saved under a name of its own.
func ExampleLoad() {
	m, err := model.Load(model.Config{Model: "model.onnx", BaseDir: filepath.Join("..", "examples", "fashion-mnist"), Name: "fashion_cnn"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Name, m.IsCascade(), len(m.Models()), len(model.Inputs(m.Models()[0].Proto)))

	dir, err := os.MkdirTemp("", "example-save")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	saved, err := model.Save(m, dir, "fashion_copy", false)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(saved[0].Name, filepath.Base(saved[0].Model))

	_, err = model.Load(model.Config{Model: "missing.onnx", BaseDir: dir})
	fmt.Println(strings.ReplaceAll(err.Error(), dir, "DIR"))
	// Output:
	// fashion_cnn false 1 1
	// fashion_copy fashion_copy.onnx
	// model file "DIR/missing.onnx" does not exist
}
