package tray

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
)

// iconSize is the icon's side in pixels; panels scale it to their height.
const iconSize = 32

// icon draws the tray's mark, a shed with its door open, as a PNG. A
// template icon is black on transparent (macOS tints it for light and dark
// menu bars); the regular one is in colour.
func icon(template bool) []byte {
	roof, wall := color.NRGBA{0x1f, 0x5a, 0x4d, 0xff}, color.NRGBA{0x2e, 0x8b, 0x74, 0xff}
	if template {
		roof, wall = color.NRGBA{A: 0xff}, color.NRGBA{A: 0xff}
	}
	img := image.NewNRGBA(image.Rect(0, 0, iconSize, iconSize))
	for y := 0; y < iconSize; y++ {
		for x := 0; x < iconSize; x++ {
			switch {
			case y >= 2 && y < 15 && abs(2*x+1-iconSize) <= 2*(y-2)*2+1:
				img.SetNRGBA(x, y, roof) // the roof: 2 wide per row each side
			case y >= 15 && y < 30 && x >= 5 && x < 27 && !(x >= 13 && x < 19 && y >= 20):
				img.SetNRGBA(x, y, wall) // the walls, the door left open
			}
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic("tray: encoding the icon: " + err.Error()) // an in-memory image always encodes
	}
	return b.Bytes()
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
