// Package content turns directories into content-addressed blocks and back:
// chunking, the file and directory format, the on-disk block store, pins and
// garbage collection. It never talks to the network; core/exchange moves
// blocks between peers.
package content
