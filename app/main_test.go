package app

import (
	"os"
	"testing"

	"github.com/fleetcal/fleetcal/internal/testfleet"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testfleet.Cleanup()
	os.Exit(code)
}
