package fastbias

// LastReport is the report of the last Run, typed (Report returns it as
// any for pipeline.Reporter).
func (a *Algorithm) LastReport() Report { return a.report }
