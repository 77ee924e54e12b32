package main

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/avnode/avnode/sdk/sdktest"
)

func TestAnswerIsDeterministic(t *testing.T) {
	if got := answer("hello from the phone"); got != "you said, backwards: phone the from hello" {
		t.Fatalf("answer: %q", got)
	}
}

// An offloaded prompt is answered by this node and counted; a payload
// without a prompt is refused.
func TestOffload(t *testing.T) {
	h := sdktest.NewHost(t)
	c := &chat{}
	ctx := context.Background()
	if diags := c.Start(ctx, json.RawMessage(`{}`), h); diags.HasError() {
		t.Fatal(diags.Err())
	}
	out, diags := c.Command(ctx, "offload", []string{`{"prompt": "hi there"}`})
	if diags.HasError() || out != (reply{Reply: "you said, backwards: there hi", By: sdktest.PeerID}) {
		t.Errorf("offload = %+v, %v", out, diags)
	}
	if n, _ := h.CounterValue("prompts"); n != 1 {
		t.Errorf("prompts counted %v, want 1", n)
	}
	if _, diags := c.Command(ctx, "offload", []string{`{"text": "hi"}`}); !diags.HasError() {
		t.Error("a payload without a prompt was answered")
	}
}
