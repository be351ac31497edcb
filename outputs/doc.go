// Package outputs writes files so that readers never see them half-written
// and a failure never leaves a mix: every writer of fleetcal output goes
// through it (model.Save, report.Write, the quantize command).
//
// Files renames temporaries into place together: each temporary is
// written, synced and closed before any rename; at Commit an existing
// target is first renamed to a hidden backup beside it, then each
// temporary is renamed to its target; if a rename fails, those done are
// undone and the backups put back, so the targets are as they were.
// WriteFile is Files with one file.
//
//	var f outputs.Files
//	if err := f.Write("out/model.onnx", b); err != nil { f.Abort(); return err }
//	if err := f.Write("out/model.onnx.data", w); err != nil { f.Abort(); return err }
//	err := f.Commit() // both appear, or neither changes
//
// Set is a whole output folder written as a set: a run writes every file
// into Set.Dir(), a staging folder, and Commit makes them visible together
// (see Set for the exact guarantee). The folder's manifest (ManifestName)
// lists what fleetcal wrote there, so that the next run removes the files
// of this one it does not write again, and a non-empty folder without a
// manifest, not made by fleetcal, is refused unless forced.
//
//	set, err := outputs.Begin("out/fashion-mnist", force)
//	defer set.Abort()                       // nothing changes unless Commit succeeds
//	... write files into set.Dir() ...
//	err = set.Commit()
//
// outputs uses the standard library only; it must never import another
// fleetcal package.
package outputs
