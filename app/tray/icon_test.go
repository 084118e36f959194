package tray

import (
	"bytes"
	"image/png"
	"testing"
)

func TestIconIsAShapeAndTheTemplateIsBlackOnClear(t *testing.T) {
	for _, template := range []bool{false, true} {
		img, err := png.Decode(bytes.NewReader(icon(template)))
		if err != nil {
			t.Fatalf("template %t: not a PNG: %v", template, err)
		}
		if b := img.Bounds(); b.Dx() != iconSize || b.Dy() != iconSize {
			t.Fatalf("template %t: %v, want %dx%d", template, b, iconSize, iconSize)
		}
		var drawn, clear, coloured int
		for y := 0; y < iconSize; y++ {
			for x := 0; x < iconSize; x++ {
				r, g, b, a := img.At(x, y).RGBA()
				switch {
				case a == 0:
					clear++
				default:
					drawn++
					if r|g|b != 0 {
						coloured++
					}
				}
			}
		}
		// A shape, not a filled or an empty square.
		if drawn < iconSize*iconSize/4 || clear < iconSize*iconSize/4 {
			t.Errorf("template %t: %d pixels drawn, %d clear", template, drawn, clear)
		}
		if template && coloured != 0 {
			t.Errorf("the template icon has %d coloured pixels; macOS wants black on clear", coloured)
		}
		if !template && coloured == 0 {
			t.Error("the regular icon is all black")
		}
	}
}
