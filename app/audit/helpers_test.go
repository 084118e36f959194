package audit

import (
	"io"
	"log/slog"
	"runtime"
)

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
