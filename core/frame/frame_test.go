package frame

import (
	"bufio"
	"bytes"
	"errors"
	"testing"
)

func TestRoundTripAndLimit(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, 2, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	status, body, err := Read(bufio.NewReader(bytes.NewReader(buf.Bytes())), 5)
	if err != nil || status != 2 || string(body) != "hello" {
		t.Fatalf("got %d %q %v", status, body, err)
	}
	if _, _, err := Read(bufio.NewReader(bytes.NewReader(buf.Bytes())), 4); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the limit: %v", err)
	}
	truncated := buf.Bytes()[:buf.Len()-1]
	if _, _, err := Read(bufio.NewReader(bytes.NewReader(truncated)), 5); err == nil {
		t.Fatal("a truncated frame was accepted")
	}
}
