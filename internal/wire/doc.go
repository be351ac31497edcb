// Package wire reads and writes the pieces fleetcal's binary encodings
// are made of: shortest-form varints, counts checked against the bytes
// left, length-prefixed strings and little-endian floats. reduce's
// statistics encoding and cluster's model-outputs encoding are both
// built from it, so that both reject the same malformed input the same
// way.
//
// It is pure Go with no dependency outside the standard library.
package wire
