package cli

import (
	"errors"
	"io"

	"google.golang.org/grpc"
)

// recvEach reads a server stream to its end, handing each message to fn;
// it stops at the first error from the stream or from fn.
func recvEach[T any](stream grpc.ServerStreamingClient[T], fn func(*T) error) error {
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(msg); err != nil {
			return err
		}
	}
}
