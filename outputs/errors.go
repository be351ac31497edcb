package outputs

import "errors"

// ErrForeign: the output folder holds files fleetcal did not write (no
// manifest), or an entry of its manifest was replaced by something else.
var ErrForeign = errors.New("holds files fleetcal did not write")
