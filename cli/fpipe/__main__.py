from fpipe.app import main

main()
