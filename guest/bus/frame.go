package bus

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxFrame is the largest frame body either side accepts.
const MaxFrame = 1 << 20

// ErrFrameTooLarge is returned for a frame whose declared length exceeds MaxFrame.
var ErrFrameTooLarge = errors.New("bus: frame larger than 1 MiB")

// errEncoding is an envelope that could not be encoded.
var errEncoding = errors.New("bus: encoding envelope")

// ReadFrame reads one length-prefixed frame body. buf is reused when large enough.
func ReadFrame(r io.Reader, buf []byte) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrame {
		return nil, fmt.Errorf("%w (declared %d bytes)", ErrFrameTooLarge, n)
	}
	if n == 0 {
		return nil, errors.New("bus: empty frame")
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("bus: short frame: %w", err)
	}
	return buf, nil
}

// AppendFrame appends the frame of body (header then body) to dst.
func AppendFrame(dst, body []byte) ([]byte, error) {
	if len(body) > MaxFrame {
		return dst, ErrFrameTooLarge
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...), nil
}

// DecodeEnvelope parses and validates one frame body.
func DecodeEnvelope(body []byte) (*Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, fmt.Errorf("bus: malformed envelope: %w", err)
	}
	if err := e.validate(); err != nil {
		return nil, err
	}
	return &e, nil
}

// EncodeEnvelope returns the framed bytes of e.
func EncodeEnvelope(e *Envelope) ([]byte, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errEncoding, err)
	}
	return AppendFrame(make([]byte, 0, 4+len(body)), body)
}

// WriteEnvelope writes e as one frame.
func WriteEnvelope(w io.Writer, e *Envelope) error {
	b, err := EncodeEnvelope(e)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// ReadEnvelope reads and decodes one frame.
func ReadEnvelope(r io.Reader) (*Envelope, error) {
	body, err := ReadFrame(r, nil)
	if err != nil {
		return nil, err
	}
	return DecodeEnvelope(body)
}
