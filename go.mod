module peerdisc

go 1.25

require github.com/matryer/is v1.4.1
