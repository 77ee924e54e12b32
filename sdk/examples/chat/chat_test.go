package main

import "testing"

func TestAnswerIsDeterministic(t *testing.T) {
	if got := answer("hello from the phone"); got != "you said, backwards: phone the from hello" {
		t.Fatalf("answer: %q", got)
	}
}
