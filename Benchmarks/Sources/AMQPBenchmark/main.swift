import Foundation

// Thin on purpose: the command lives in BenchmarkCommand; this only hands it the arguments and exits with its status.
exit(await BenchmarkCommand.main(arguments: Array(CommandLine.arguments.dropFirst())))
